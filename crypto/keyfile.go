package crypto

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pacsnet/pacsnet/internal/durable"
)

// MaxKeyFileSize is the largest key file [ReadKeyFile] reads. A hybrid age
// identity is ~90 bytes and a marshalled Ed25519 key 68; the cap only
// exists so a misconfigured path (a log file, a device) cannot make the
// node allocate without bound.
const MaxKeyFileSize = 64 << 10

// WriteKeyFile creates path with mode 0600 and writes data to it. It never
// overwrites: if path exists the error wraps [fs.ErrExist]. The file and
// its parent directory are fsynced so the key survives a power loss once
// WriteKeyFile returns. On error, a file created by this call is removed
// (best effort), so the call can be retried.
func WriteKeyFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the write error matters more
			_ = os.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close key file: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync key file directory: %w", err)
	}
	return nil
}

// ReadKeyFile reads a secret written by [WriteKeyFile]. It refuses, with
// an error wrapping [ErrInsecureKeyFile] that names the path and the mode,
// a file that is not a regular file or whose mode grants any permission to
// group or others. It reads at most [MaxKeyFileSize] bytes and fails on a
// larger file rather than truncating it.
//
// Symbolic links are followed and the target is checked, not the link:
// secret mounts (Kubernetes, systemd credentials) are commonly symlinks,
// and whoever can replace the link could replace a plain file just as
// well. The checks run on the opened file descriptor, so swapping the
// file between check and read does not help an attacker. The file is
// opened non-blocking so a FIFO planted at path cannot hang the caller.
func ReadKeyFile(path string) ([]byte, error) {
	// Stat first so we never open a FIFO or device at all.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if err := checkKeyFileMode(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err = f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if err := checkKeyFileMode(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("read key file %s: larger than %d bytes", path, MaxKeyFileSize)
	}
	return data, nil
}

func checkKeyFileMode(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("read key file %s: not a regular file (mode %s): %w", path, fi.Mode(), ErrInsecureKeyFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("read key file %s: mode %#o grants access to group or others, want 0600: %w", path, perm, ErrInsecureKeyFile)
	}
	return nil
}
