package crypto

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
)

func TestIdentitySaveLoad(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if id.PeerID() == "" || id.PeerID() != id.PeerID() {
		t.Fatal("peer ID empty or unstable")
	}
	dir := filepath.Join(t.TempDir(), "identity")
	if err := SaveIdentity(dir, id); err != nil {
		t.Fatalf("SaveIdentity: %v", err)
	}
	for _, name := range []string{SignKeyFile, BoxKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o, want 0600", name, fi.Mode().Perm())
		}
	}

	got, err := LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if got.PeerID() != id.PeerID() {
		t.Errorf("peer ID changed: %s → %s", id.PeerID(), got.PeerID())
	}
	if !got.Sign.Equals(id.Sign) {
		t.Error("signing key changed")
	}
	if got.Recipient().String() != id.Recipient().String() {
		t.Error("age recipient changed")
	}
	// Loading twice gives the same identity too (nothing random on load).
	again, err := LoadIdentity(dir)
	if err != nil || again.PeerID() != id.PeerID() {
		t.Fatalf("second load: %v", err)
	}
	// The loaded keys work: what the old identity seals, the new one opens.
	sealed, err := Seal(id.Sign, "test", []byte("hello"), got.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, signer, err := Open(sealed, got.Box, "test", 100); err != nil || signer != got.PeerID() {
		t.Fatalf("open with loaded identity: signer %s, %v", signer, err)
	}

	t.Run("save refuses to overwrite", func(t *testing.T) {
		other, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveIdentity(dir, other); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		still, err := LoadIdentity(dir)
		if err != nil || still.PeerID() != id.PeerID() {
			t.Fatalf("identity changed by refused save: %v", err)
		}
	})
	t.Run("partial directory is not half-overwritten", func(t *testing.T) {
		d := t.TempDir()
		if err := WriteKeyFile(filepath.Join(d, BoxKeyFile), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := SaveIdentity(d, id); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		if _, err := os.Stat(filepath.Join(d, SignKeyFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("node.key left behind")
		}
	})
	t.Run("load refuses insecure files", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(dir, BoxKeyFile), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(filepath.Join(dir, BoxKeyFile), 0o600)
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("err = %v, want ErrInsecureKeyFile", err)
		}
	})
}

func TestLoadIdentityRejectsGarbage(t *testing.T) {
	good, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	goodSign, _ := lcrypto.MarshalPrivateKey(good.Sign)
	ecdsa, _, err := lcrypto.GenerateECDSAKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaBytes, _ := lcrypto.MarshalPrivateKey(ecdsa)
	tests := []struct {
		name      string
		sign, box []byte
	}{
		{"garbage signing key", []byte("not a key"), []byte(good.Box.String())},
		{"non-Ed25519 signing key", ecdsaBytes, []byte(good.Box.String())},
		{"garbage age key", goodSign, []byte("AGE-SECRET-KEY-1XXXX")},
		{"classic age key", goodSign, []byte(mustX25519(t).String())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			if err := WriteKeyFile(filepath.Join(d, SignKeyFile), tt.sign); err != nil {
				t.Fatal(err)
			}
			if err := WriteKeyFile(filepath.Join(d, BoxKeyFile), tt.box); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadIdentity(d); err == nil {
				t.Fatal("loaded a bad identity")
			}
		})
	}
}
