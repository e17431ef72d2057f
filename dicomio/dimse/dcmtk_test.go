package dimse

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

func needDCMTK(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs dcmtk)", tool)
		}
	}
}

// DCMTK's echoscu and storescu associate with our acceptor: C-ECHO, and
// C-STORE of a CT series whose data sets arrive byte for byte.
func TestDCMTKEchoAndStore(t *testing.T) {
	needDCMTK(t, "echoscu", "storescu")
	var mu sync.Mutex
	got := map[string][]byte{}
	store := func(_ context.Context, a *Assoc, m *Message) error {
		b, err := io.ReadAll(m.Data)
		if err != nil {
			return err
		}
		mu.Lock()
		got[m.Command.AffectedSOPInstance] = b
		mu.Unlock()
		return a.Send(m.Context.ID, &Command{Field: CStoreRSP, MessageIDBeingAnswered: m.Command.MessageID,
			AffectedSOPClass: m.Command.AffectedSOPClass, AffectedSOPInstance: m.Command.AffectedSOPInstance}, nil)
	}
	addr, served := pair(t, testAcceptor(), map[uint16]HandlerFunc{CStoreRQ: store})
	host, port, _ := strings.Cut(addr, ":")

	out, err := exec.Command("echoscu", "-aet", "TESTSCU", "-aec", "PACSNET", host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	if err := <-served; err != nil {
		t.Fatalf("echo association: %v", err)
	}

	dir := t.TempDir()
	_, paths, err := synth.WriteCT(dir, synth.CTOptions{Slices: 5, Rows: 128, Cols: 128, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-aet", "TESTSCU", "-aec", "PACSNET", "-pdu", "16384", host, port}, paths...)
	cmd := exec.Command("storescu", args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	if err := <-served; err != nil {
		t.Fatalf("store association: %v", err)
	}
	if len(got) != len(paths) {
		t.Fatalf("received %d instances, want %d", len(got), len(paths))
	}
	for _, p := range paths {
		file, _ := os.ReadFile(p)
		found := false
		for _, ds := range got {
			// The data set is the file after its preamble and meta group.
			if len(ds) > 0 && bytes.HasSuffix(file, ds) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no received data set matches the file's", filepath.Base(p))
		}
	}
}
