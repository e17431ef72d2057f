package auditlog

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileCursor(t *testing.T) {
	dir := t.TempDir()
	c := &FileCursor{Path: filepath.Join(dir, "audit.cursor")}
	if seq, err := c.Load(); err != nil || seq != 0 {
		t.Fatalf("missing file: %d, %v", seq, err)
	}
	for _, seq := range []uint64{1, 42, 1<<64 - 1} {
		if err := c.Save(seq); err != nil {
			t.Fatal(err)
		}
		if got, err := (&FileCursor{Path: c.Path}).Load(); err != nil || got != seq {
			t.Fatalf("Load = %d, %v; want %d", got, err, seq)
		}
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := os.WriteFile(c.Path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(); err == nil {
		t.Error("garbage cursor loaded")
	}
	bad := &FileCursor{Path: filepath.Join(dir, "no", "such", "dir", "cursor")}
	if err := bad.Save(1); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}
