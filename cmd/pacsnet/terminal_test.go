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
	// A second study, so that "2.25." names two (and lists them).
	_, other, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 16, Cols: 16, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.dcm"), other[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, "import", dir)
	for _, wide := range []bool{false, true} {
		args := []string{"studies"}
		if wide {
			args = append(args, "--wide")
		}
		out := mustRun(t, f, args...)
		if bytes.ContainsAny(out, "\x1b") {
			t.Errorf("%v printed control characters: %q", args, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 3 {
			t.Errorf("%v printed %d lines, want a header and two rows: %q", args, len(lines), out)
		}
		// Narrow, the ID is cut (after escaping); wide, it is whole.
		if want := `AB\x1b[2J\x1b[H\x0aFORGED ROW`; !bytes.Contains(out, []byte(want[:10])) || wide && !bytes.Contains(out, []byte(want)) {
			t.Errorf("%v: the patient ID is not shown escaped: %q", args, out)
		}
	}
	// The list of studies an ambiguous name could mean is escaped too.
	out, err := f.Run("export", "--study", "2.25.", "--out", filepath.Join(c.dir, "exp"))
	if exitCode(err) != 1 {
		t.Fatalf("ambiguous --study exited %d, want 1: %s", exitCode(err), out)
	}
	msg := err.Error()
	if strings.Contains(msg, "\x1b") || strings.Contains(msg, "\nFORGED") || !strings.Contains(msg, `AB\x1b[2J\x1b[H\x0aFORGED ROW`) {
		t.Errorf("the candidates of an ambiguous --study are not escaped: %q", msg)
	}
}
