// Package durable writes files so that what was written stays written:
// a crash leaves the old file or the new one whole, never a torn one,
// and a name created or renamed stays once the call returns. Standard
// library only, so that every package that keeps state on disk (the
// node's home, the archive, key files, the audit shipper's cursor) can
// share it.
package durable

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, with permissions mode: a temporary
// file beside it (".tmp-*") is written, given mode, fsynced and renamed
// over path, then the directory is fsynced so that the rename stays. On
// an error the temporary file is removed, and path is either the old
// file or, if only the directory's sync failed, the new one.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after the rename; there only on an error
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so that a file created, renamed or removed
// in it stays so.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
