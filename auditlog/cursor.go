package auditlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileCursor is a [Cursor] kept in a small file holding the decimal seq
// of the last entry delivered. A missing file reads as 0 (ship from the
// first entry).
type FileCursor struct {
	Path string
}

var _ Cursor = (*FileCursor)(nil)

// Load reads the cursor; 0 when the file does not exist yet.
func (c *FileCursor) Load() (uint64, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load audit cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("load audit cursor %s: %w", c.Path, err)
	}
	return seq, nil
}

// Save replaces the file so that a crash leaves the old or the new value,
// never a torn one: write a temporary file, sync it, rename it over the
// old one and sync the directory so the rename itself is durable.
func (c *FileCursor) Save(seq uint64) error {
	dir := filepath.Dir(c.Path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save audit cursor: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(strconv.FormatUint(seq, 10) + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.Path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save audit cursor: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save audit cursor: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fmt.Errorf("save audit cursor: sync dir: %w", err)
	}
	return nil
}
