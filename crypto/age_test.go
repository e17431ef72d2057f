package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
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

// DecryptTo streams what Decrypt returns whole, and fails the same way:
// a flipped byte is ErrMalformed (reported only once the bad chunk is
// read), another key ErrNotForUs.
func TestDecryptTo(t *testing.T) {
	sk, err := NewStudyKey()
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, 300_000)
	rand.Read(plain)
	ct, err := Encrypt(plain, sk.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	if n, err := DecryptTo(&got, bytes.NewReader(ct), buf, sk); err != nil || n != int64(len(plain)) || !bytes.Equal(got.Bytes(), plain) {
		t.Fatalf("decrypt: %d bytes, %v", n, err)
	}
	bad := bytes.Clone(ct)
	bad[len(bad)-100] ^= 1
	if _, err := DecryptTo(io.Discard, bytes.NewReader(bad), buf, sk); !errors.Is(err, ErrMalformed) {
		t.Errorf("a flipped byte: %v, want ErrMalformed", err)
	}
	other, _ := NewStudyKey()
	if _, err := DecryptTo(io.Discard, bytes.NewReader(ct), buf, other); !errors.Is(err, ErrNotForUs) {
		t.Errorf("another key: %v, want ErrNotForUs", err)
	}
}
