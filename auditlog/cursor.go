package auditlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/pacsnet/pacsnet/internal/durable"
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
	if err := durable.WriteFile(c.Path, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("save audit cursor: %w", err)
	}
	return nil
}
