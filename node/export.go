package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// An export writes patient data as the node's user into a folder an admin
// names, possibly in a place other local users can write (/tmp, a shared
// drive). exportDir makes that safe: every folder is opened without
// following a symbolic link and checked to belong to the node's user, and
// is then held open, so that every file and subfolder is created relative
// to the checked folder (openat) and nothing on the way can be swapped for
// a link afterwards. Files are created new (O_EXCL|O_NOFOLLOW): never
// through a link, never into a file someone else made.

// exportMarker is the file that marks an export folder as incomplete. It
// is written before the first instance and removed only once every
// instance of the whole study is written, verified and synced.
const exportMarker = "INCOMPLETE"

// Modes of what an export creates: patient data.
const (
	exportDirMode  = 0o750
	exportFileMode = 0o640
)

// exportError is a request the caller must change (a relative path, an
// incomplete study, a target that is a link, someone else's, or not
// empty). conflict marks a target that contradicts the request (409).
type exportError struct {
	msg      string
	conflict bool
}

func (e *exportError) Error() string { return e.msg }

func exportRefused(conflict bool, f string, a ...any) error {
	return &exportError{msg: "export: " + fmt.Sprintf(f, a...), conflict: conflict}
}

// exportDir is an open, checked folder of an export.
type exportDir struct {
	fd   int
	path string
}

func (d *exportDir) close() { unix.Close(d.fd) }

// openExportRoot opens (creating it and its parents if missing) the
// export's target folder. An existing one must be a real folder of the
// node's user and, unless merge, empty.
func openExportRoot(out string, merge bool) (*exportDir, error) {
	if err := os.MkdirAll(filepath.Dir(out), exportDirMode); err != nil {
		return nil, fmt.Errorf("export: create %s: %w", filepath.Dir(out), err)
	}
	created := false
	switch err := unix.Mkdir(out, exportDirMode); {
	case err == nil:
		created = true
	case !errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("export: create %s: %w", out, err)
	}
	fd, err := unix.Open(out, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openDirError(out, err)
	}
	d := &exportDir{fd: fd, path: out}
	if err := d.check(created); err != nil {
		d.close()
		return nil, err
	}
	if !created && !merge {
		names, err := d.names()
		if err != nil {
			d.close()
			return nil, err
		}
		if len(names) > 0 {
			d.close()
			return nil, exportRefused(true, "%s is not empty: name a new folder, or add --merge to add to it (files already there must be identical to the archive's)", out)
		}
	}
	return d, nil
}

func openDirError(path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return exportRefused(false, "%s is a symbolic link or not a folder: exports never follow links; name a real folder", path)
	}
	return fmt.Errorf("export: open %s: %w", path, err)
}

// check requires the open folder to belong to the node's user; one the
// export created gets exactly exportDirMode whatever the umask.
func (d *exportDir) check(created bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return fmt.Errorf("export: stat %s: %w", d.path, err)
	}
	if int(st.Uid) != os.Geteuid() {
		return exportRefused(false, "%s belongs to another user (uid %d): export into a folder the node's user (uid %d) owns", d.path, st.Uid, os.Geteuid())
	}
	if created {
		if err := unix.Fchmod(d.fd, exportDirMode); err != nil {
			return fmt.Errorf("export: chmod %s: %w", d.path, err)
		}
	}
	return nil
}

func (d *exportDir) names() ([]string, error) {
	dup, err := unix.Dup(d.fd)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", d.path, err)
	}
	f := os.NewFile(uintptr(dup), d.path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("export: read %s: %w", d.path, err)
	}
	return names, nil
}

// sub opens (creating it if missing) the subfolder name of d.
func (d *exportDir) sub(name string) (*exportDir, error) {
	created := false
	switch err := unix.Mkdirat(d.fd, name, exportDirMode); {
	case err == nil:
		created = true
	case !errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("export: create %s: %w", filepath.Join(d.path, name), err)
	}
	path := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openDirError(path, err)
	}
	s := &exportDir{fd: fd, path: path}
	if err := s.check(created); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// sync makes the folder's entries durable.
func (d *exportDir) sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return fmt.Errorf("export: sync %s: %w", d.path, err)
	}
	return nil
}

// writeFile creates name in d with data, synced, and reads it back to
// check its SHA-256 against digest. With merge, an existing file of the
// node's user that is already identical is kept (skipped); any other
// existing file is refused, never overwritten.
func (d *exportDir) writeFile(name string, data []byte, digest string, merge bool) (skipped bool, err error) {
	path := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, exportFileMode)
	if errors.Is(err, unix.EEXIST) {
		if !merge {
			return false, exportRefused(true, "%s exists already: not overwritten", path)
		}
		return true, d.same(name, digest)
	}
	if err != nil {
		return false, fmt.Errorf("export: create %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	_, werr := f.Write(data)
	merr := f.Chmod(exportFileMode) // exactly, whatever the umask
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, merr, serr, cerr); err != nil {
		return false, fmt.Errorf("export: write %s: %w", path, err)
	}
	if err := d.same(name, digest); err != nil {
		return false, fmt.Errorf("export: read back: %w", err)
	}
	return false, nil
}

// same checks that name in d is a regular file of the node's user whose
// SHA-256 is digest.
func (d *exportDir) same(name, digest string) error {
	path := filepath.Join(d.path, name)
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return exportRefused(true, "%s exists and is a symbolic link: not followed", path)
	}
	if err != nil {
		return fmt.Errorf("export: open %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("export: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		return exportRefused(true, "%s exists and is not a file of the node's user: left alone", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("export: read %s: %w", path, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != digest {
		return exportRefused(true, "%s exists and differs from the archive's instance: not overwritten", path)
	}
	return nil
}

// marker is the open INCOMPLETE file of an export in progress.
type marker struct {
	dir *exportDir
	f   *os.File
}

// createMarker writes the INCOMPLETE marker into d before anything else.
// A marker left by an earlier export that did not finish (merge) is
// replaced; anything else by that name is refused.
func createMarker(d *exportDir, text string) (*marker, error) {
	path := filepath.Join(d.path, exportMarker)
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(d.fd, exportMarker, flags, exportFileMode)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(d.fd, exportMarker, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("export: stat %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
			return nil, exportRefused(true, "%s exists and is not a file of the node's user: left alone", path)
		}
		if err := unix.Unlinkat(d.fd, exportMarker, 0); err != nil {
			return nil, fmt.Errorf("export: replace %s: %w", path, err)
		}
		fd, err = unix.Openat(d.fd, exportMarker, flags, exportFileMode)
	}
	if err != nil {
		return nil, fmt.Errorf("export: create %s: %w", path, err)
	}
	m := &marker{dir: d, f: os.NewFile(uintptr(fd), path)}
	if err := m.f.Chmod(exportFileMode); err != nil {
		m.f.Close()
		return nil, fmt.Errorf("export: chmod %s: %w", path, err)
	}
	if err := m.set(text); err != nil {
		m.f.Close()
		return nil, err
	}
	return m, nil
}

// set replaces the marker's text, synced, and syncs its folder.
func (m *marker) set(text string) error {
	if err := m.f.Truncate(0); err != nil {
		return fmt.Errorf("export: write %s: %w", m.f.Name(), err)
	}
	if _, err := m.f.WriteAt([]byte(text), 0); err != nil {
		return fmt.Errorf("export: write %s: %w", m.f.Name(), err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("export: sync %s: %w", m.f.Name(), err)
	}
	return m.dir.sync()
}

// keep leaves the marker in place with its final text.
func (m *marker) keep(text string) error {
	defer m.f.Close()
	return m.set(text)
}

// remove deletes the marker: the export is whole.
func (m *marker) remove() error {
	m.f.Close()
	if err := unix.Unlinkat(m.dir.fd, exportMarker, 0); err != nil {
		return fmt.Errorf("export: remove %s: %w", m.f.Name(), err)
	}
	return m.dir.sync()
}

// markerText is what the INCOMPLETE file says: a person opening the folder
// must not take part of a study for all of it.
func markerText(study string, written, total int, why string) string {
	var b strings.Builder
	b.WriteString("INCOMPLETE EXPORT: this folder does not hold the whole study.\n\n")
	fmt.Fprintf(&b, "Study Instance UID: %s\n", study)
	fmt.Fprintf(&b, "Instances written and verified: %d of %d\n", written, total)
	fmt.Fprintf(&b, "Why: %s\n\n", why)
	b.WriteString("pacsnet writes this file before the first instance and removes it only\n" +
		"when every instance of the study is written, verified and synced.\n")
	return b.String()
}
