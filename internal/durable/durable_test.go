package durable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, c := range []struct {
		data string
		mode os.FileMode
	}{{"first", 0o600}, {"second, longer", 0o644}} {
		if err := WriteFile(path, []byte(c.data), c.mode); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != c.data {
			t.Fatalf("read back %q, %v; want %q", b, err, c.data)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != c.mode {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), c.mode)
		}
	}
	// Nothing but the file is left in the directory.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the directory holds %d entries, want the file alone", len(ents))
	}
	// A directory that is not there: an error, and nothing written.
	if err := WriteFile(filepath.Join(dir, "missing", "state"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile into a missing directory: no error")
	}
	// Renaming over a directory fails: the temporary file goes too.
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "adir", "f"), nil, 0o600)
	if err := WriteFile(filepath.Join(dir, "adir"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile over a non-empty directory: no error")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("after a failed rename the directory holds %d entries, want 2 (no temporary file left)", len(ents))
	}
	if err := SyncDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("SyncDir of a missing directory: no error")
	}
}
