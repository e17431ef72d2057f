package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// Control characters in DICOM data (an escape sequence that clears the
// screen, a newline that forges a row) never reach the admin's terminal:
// human listings escape them; --json keeps the value exact.
func TestControlCharactersNeverReachTheTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	c := newCluster(t)
	f := c.facility("St Mary")
	// The generator refuses such an ID; put it in place of one as long.
	const hostile, stand = "AB\x1b[2J\x1b[H\nFORGED ROW!!", "PLACEHOLDERPLACEHOLDER" // the same length
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 16, Cols: 16, Seed: 5, PatientID: stand})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(files[0].Data, []byte(stand)) {
		t.Fatal("no placeholder patient ID in the generated file")
	}
	files[0].Data = bytes.Replace(files[0].Data, []byte(stand), []byte(hostile), 1)
	dir := filepath.Join(c.dir, "hostile")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, files[0].Name), files[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, "import", dir)
	out := mustRun(t, f, "studies")
	if bytes.ContainsAny(out, "\x1b") {
		t.Errorf("studies printed control characters: %q", out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 2 {
		t.Errorf("studies printed %d lines, want a header and one row: %q", len(lines), out)
	}
	if !bytes.Contains(out, []byte(`AB\x1b[2J\x1b[H\x0aFORGED ROW`)) {
		t.Errorf("the patient ID is not shown escaped: %q", out)
	}
}
