package crypto

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadKeyFilePermissions(t *testing.T) {
	secret := []byte("secret key material")
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the path to read
		wantErr error                                 // nil: must succeed
		inMsg   []string                              // substrings the error must contain
	}{
		{"0600 regular file", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o600)
		}, nil, nil},
		{"0400 read-only file", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o400)
		}, nil, nil},
		{"0644 world readable", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o644)
		}, ErrInsecureKeyFile, []string{"0644", "/k"}},
		{"0640 group readable", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o640)
		}, ErrInsecureKeyFile, []string{"0640"}},
		{"0620 group writable", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o620)
		}, ErrInsecureKeyFile, []string{"0620"}},
		{"0602 world writable", func(t *testing.T, dir string) string {
			return writeMode(t, dir, "k", secret, 0o602)
		}, ErrInsecureKeyFile, []string{"0602"}},
		{"directory 0700", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "d")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, ErrInsecureKeyFile, []string{"not a regular file"}},
		{"symlink to 0600 file is followed", func(t *testing.T, dir string) string {
			target := writeMode(t, dir, "target", secret, 0o600)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, nil, nil},
		{"symlink to 0644 file is refused", func(t *testing.T, dir string) string {
			target := writeMode(t, dir, "target", secret, 0o644)
			link := filepath.Join(dir, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, ErrInsecureKeyFile, []string{"0644", "/link"}},
		{"fifo is refused without blocking", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return p
		}, ErrInsecureKeyFile, []string{"not a regular file"}},
		{"missing file", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing")
		}, fs.ErrNotExist, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, t.TempDir())
			done := make(chan struct{})
			var got []byte
			var err error
			go func() {
				defer close(done)
				got, err = ReadKeyFile(path)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadKeyFile hung")
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadKeyFile: %v", err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("got %q, want %q", got, secret)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.inMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if got != nil {
				t.Errorf("data returned with error")
			}
		})
	}
}

func writeMode(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
	return p
}

func TestReadKeyFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	ok := writeMode(t, dir, "max", bytes.Repeat([]byte{'k'}, MaxKeyFileSize), 0o600)
	if got, err := ReadKeyFile(ok); err != nil || len(got) != MaxKeyFileSize {
		t.Fatalf("file of exactly the cap: len %d, err %v", len(got), err)
	}
	big := writeMode(t, dir, "big", bytes.Repeat([]byte{'k'}, MaxKeyFileSize+1), 0o600)
	if _, err := ReadKeyFile(big); err == nil {
		t.Fatal("file over the cap was read")
	}
}

func TestWriteKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := WriteKeyFile(p, []byte("first")); err != nil {
		t.Fatalf("WriteKeyFile: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %#o, want 0600", fi.Mode().Perm())
	}

	t.Run("never overwrites", func(t *testing.T) {
		err := WriteKeyFile(p, []byte("second"))
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		got, err := ReadKeyFile(p)
		if err != nil || string(got) != "first" {
			t.Fatalf("after refused overwrite: %q, %v", got, err)
		}
	})
	t.Run("does not follow a dangling symlink", func(t *testing.T) {
		link := filepath.Join(dir, "dangling")
		target := filepath.Join(dir, "would-be-created")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := WriteKeyFile(link, []byte("x")); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("err = %v, want fs.ErrExist", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("symlink target was created")
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		err := WriteKeyFile(filepath.Join(dir, "no", "such", "key"), []byte("x"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("round trip through ReadKeyFile", func(t *testing.T) {
		data := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100)
		q := filepath.Join(dir, "bin")
		if err := WriteKeyFile(q, data); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyFile(q)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
