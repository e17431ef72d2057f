package crypto

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// What EncryptWriter writes in pieces decrypts like Encrypt's whole file,
// with a study key, and the same recipient rules hold.
func TestEncryptWriter(t *testing.T) {
	sk, err := NewStudyKey()
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 3<<20+17)
	rand.Read(plain)
	var ct bytes.Buffer
	w, err := EncryptWriter(&ct, sk.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(plain); off += 100_000 {
		if _, err := w.Write(plain[off:min(off+100_000, len(plain))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt(ct.Bytes(), sk)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("decrypt: %v (equal %v)", err, bytes.Equal(got, plain))
	}
	if _, err := EncryptWriter(&ct); err == nil {
		t.Error("no recipients accepted")
	}
}
