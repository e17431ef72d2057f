package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pacsnet/pacsnet/api"
)

// exportTo runs an export of study into out.
func exportTo(n *tnode, study, out string, merge, partial bool) (ExportResult, error) {
	return n.archive.Export(context.Background(), ExportRequest{Study: study, Out: out, Merge: merge, AllowPartial: partial, Actor: "admin"})
}

// exportFiles lists the files under dir, relative, with their contents.
func exportFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
		}
		return nil
	})
	return out
}

func wantExportRefused(t *testing.T, err error, code api.Code, text string) {
	t.Helper()
	if err == nil || errorCode(err) != code || !strings.Contains(err.Error(), text) {
		t.Fatalf("got %v (%s), want %s %q", err, errorCode(err), code, text)
	}
}

// Exports create their files new, with the documented modes, never
// through a link and never into someone else's folder or file; a folder
// in use is refused unless merging; and a folder that does not hold the
// whole study says so in an INCOMPLETE file.
func TestExportSafety(t *testing.T) {
	n := newNode(t, "Export")
	study, _ := importCT(t, n, 7, 3)
	base := t.TempDir()

	t.Run("modes whatever the umask, no marker left", func(t *testing.T) {
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		out := filepath.Join(base, "modes", "exp")
		res, err := exportTo(n, study, out, false, false)
		if err != nil || len(res.Files) != 3 || res.Marker != "" {
			t.Fatalf("export: %+v %v", res, err)
		}
		for _, f := range res.Files {
			fi, err := os.Stat(f.Path)
			if err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("%s: mode %v, %v", f.Path, fi.Mode(), err)
			}
			if di, _ := os.Stat(filepath.Dir(f.Path)); di.Mode().Perm() != 0o750 {
				t.Errorf("%s: mode %v", filepath.Dir(f.Path), di.Mode())
			}
		}
		if di, _ := os.Stat(out); di.Mode().Perm() != 0o750 {
			t.Errorf("%s: mode %v", out, di.Mode())
		}
		if _, err := os.Lstat(filepath.Join(out, exportMarker)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a whole export left its marker: %v", err)
		}
	})

	t.Run("target is a symlink", func(t *testing.T) {
		real := filepath.Join(base, "real")
		os.Mkdir(real, 0o750)
		link := filepath.Join(base, "link")
		os.Symlink(real, link)
		_, err := exportTo(n, study, link, false, false)
		wantExportRefused(t, err, api.CodeBadRequest, "symbolic link")
		if got := exportFiles(t, real); len(got) != 0 {
			t.Fatalf("written through the link: %v", got)
		}
	})

	t.Run("folder of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a folder to another user")
		}
		out := filepath.Join(base, "foreign")
		os.Mkdir(out, 0o777)
		os.Chown(out, 4242, 4242)
		_, err := exportTo(n, study, out, true, false)
		wantExportRefused(t, err, api.CodeBadRequest, "belongs to another user (uid 4242)")
		if got := exportFiles(t, out); len(got) != 0 {
			t.Fatalf("written into a foreign folder: %v", got)
		}
	})

	// A merge meets what others left in a first export's folder.
	first := filepath.Join(base, "first")
	res, err := exportTo(n, study, first, false, false)
	if err != nil {
		t.Fatal(err)
	}
	before := exportFiles(t, first)

	t.Run("non-empty target without merge", func(t *testing.T) {
		_, err := exportTo(n, study, first, false, false)
		wantExportRefused(t, err, api.CodeConflict, "is not empty")
		if got := exportFiles(t, first); len(got) != len(before) {
			t.Fatalf("folder changed: %v", got)
		}
	})

	t.Run("merge keeps identical files", func(t *testing.T) {
		again, err := exportTo(n, study, first, true, false)
		if err != nil || len(again.Files) != 3 {
			t.Fatalf("merge: %+v %v", again, err)
		}
		for _, f := range again.Files {
			if !f.Skipped {
				t.Errorf("%s was written again", f.Path)
			}
		}
		if _, err := os.Lstat(filepath.Join(first, exportMarker)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a whole merge left its marker: %v", err)
		}
	})

	t.Run("merge refuses a symlinked file", func(t *testing.T) {
		out := filepath.Join(base, "linkedfile")
		victim := filepath.Join(base, "victim")
		os.WriteFile(victim, []byte("someone else's file"), 0o666)
		series := filepath.Dir(res.Files[0].Path)
		os.MkdirAll(filepath.Join(out, filepath.Base(series)), 0o750)
		os.Symlink(victim, filepath.Join(out, filepath.Base(series), filepath.Base(res.Files[0].Path)))
		_, err := exportTo(n, study, out, true, false)
		wantExportRefused(t, err, api.CodeConflict, "symbolic link")
		if b, _ := os.ReadFile(victim); string(b) != "someone else's file" {
			t.Fatalf("written through a link: %q", b)
		}
		marker, _ := os.ReadFile(filepath.Join(out, exportMarker))
		if !strings.Contains(string(marker), "0 of 3") || !strings.Contains(string(marker), "INCOMPLETE") {
			t.Fatalf("marker: %q", marker)
		}
	})

	t.Run("merge refuses a symlinked series folder", func(t *testing.T) {
		out := filepath.Join(base, "linkeddir")
		elsewhere := filepath.Join(base, "elsewhere")
		os.MkdirAll(out, 0o750)
		os.Mkdir(elsewhere, 0o750)
		os.Symlink(elsewhere, filepath.Join(out, filepath.Base(filepath.Dir(res.Files[0].Path))))
		_, err := exportTo(n, study, out, true, false)
		wantExportRefused(t, err, api.CodeBadRequest, "symbolic link")
		if got := exportFiles(t, elsewhere); len(got) != 0 {
			t.Fatalf("written through a linked folder: %v", got)
		}
	})

	t.Run("merge refuses a file of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a file to another user")
		}
		out := filepath.Join(base, "foreignfile")
		series := filepath.Base(filepath.Dir(res.Files[0].Path))
		os.MkdirAll(filepath.Join(out, series), 0o750)
		p := filepath.Join(out, series, filepath.Base(res.Files[0].Path))
		os.WriteFile(p, []byte(before[filepath.Join(series, filepath.Base(p))]), 0o666) // identical bytes, but not ours
		os.Chown(p, 4242, 4242)
		_, err := exportTo(n, study, out, true, false)
		wantExportRefused(t, err, api.CodeConflict, "not a file of the node's user")
	})

	t.Run("a failed merge leaves the marker with its count", func(t *testing.T) {
		out := filepath.Join(base, "differs")
		if _, err := exportTo(n, study, out, false, false); err != nil {
			t.Fatal(err)
		}
		last := res.Files[2].Path
		rel, _ := filepath.Rel(first, last)
		os.WriteFile(filepath.Join(out, rel), []byte("changed"), 0o640)
		_, err := exportTo(n, study, out, true, false)
		wantExportRefused(t, err, api.CodeConflict, "differs from the archive's instance")
		if !strings.Contains(err.Error(), "2 of 3 instances written") {
			t.Errorf("error does not say how far it got: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, rel)); string(b) != "changed" {
			t.Errorf("a different file was overwritten")
		}
		marker, _ := os.ReadFile(filepath.Join(out, exportMarker))
		if !strings.Contains(string(marker), "Instances written and verified: 2 of 3") || !strings.Contains(string(marker), "the export failed") {
			t.Fatalf("marker: %q", marker)
		}
		// Fixed and merged again, the folder is whole: the marker goes.
		os.Remove(filepath.Join(out, rel))
		if _, err := exportTo(n, study, out, true, false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(out, exportMarker)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker left after the export completed: %v", err)
		}
	})

	t.Run("a cancelled export leaves the marker", func(t *testing.T) {
		out := filepath.Join(base, "cancelled")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := n.archive.Export(ctx, ExportRequest{Study: study, Out: out, Actor: "admin"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled export: %v", err)
		}
		marker, _ := os.ReadFile(filepath.Join(out, exportMarker))
		if !strings.Contains(string(marker), "0 of 3") || !strings.Contains(string(marker), "cancelled") {
			t.Fatalf("marker: %q", marker)
		}
		if fi, _ := os.Stat(filepath.Join(out, exportMarker)); fi.Mode().Perm()&0o027 != 0 {
			t.Errorf("marker mode %v", fi.Mode())
		}
	})

	t.Run("a partial export keeps the marker", func(t *testing.T) {
		if err := n.store.SetExpected(study, 5); err != nil { // as if fetched from a manifest of 5
			t.Fatal(err)
		}
		defer n.store.SetExpected(study, 0)
		out := filepath.Join(base, "partial")
		if _, err := exportTo(n, study, out, false, false); !errors.Is(err, errIncomplete) {
			t.Fatalf("partial study without --allow-partial: %v", err)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused export created its folder")
		}
		res, err := exportTo(n, study, out, false, true)
		if err != nil || len(res.Files) != 3 || res.Marker != filepath.Join(out, exportMarker) {
			t.Fatalf("partial export: %+v %v", res, err)
		}
		marker, _ := os.ReadFile(res.Marker)
		if !strings.Contains(string(marker), "3 of 5") {
			t.Fatalf("marker: %q", marker)
		}
	})
}
