package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/cmd/internal/facility"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// startStorescp runs DCMTK's storescp on a free loopback port writing
// into a temporary folder, stopped by PID at the end of the test.
func startStorescp(t *testing.T, aet string, extra ...string) (int, string) {
	t.Helper()
	port, err := facility.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("storescp", append(append([]string{"-aet", aet, "-od", dir}, extra...), strconv.Itoa(port))...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "storescp to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port, dir
}

// dataSet strips a Part-10 file's preamble and meta group (which
// storescp writes itself).
func dataSet(b []byte) []byte {
	return b[144+int(binary.LittleEndian.Uint32(b[140:144])):]
}

// `pacsnet send` forwards a study to a known AE (storescp), which
// receives the exact data sets, with progress on stderr; an AE that
// accepts none of the syntaxes held (storescp +xi: implicit VR only) gets
// nothing and the send fails saying so; an unknown AE is refused.
func TestSendToStorescp(t *testing.T) {
	if _, err := exec.LookPath("storescp"); err != nil {
		t.Skip("storescp not installed (make deps installs dcmtk)")
	}
	okPort, okDir := startStorescp(t, "PACS")
	implicitPort, implicitDir := startStorescp(t, "OLDPACS", "+xi")

	c := newCluster(t)
	f := facility.New(c.bin, c.dir, "St Mary")
	c.facs = append(c.facs, f)
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(f.Home, "config.toml")
	cfg, _ := os.ReadFile(cfgPath)
	down, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing listens on once closed
	if err != nil {
		t.Fatal(err)
	}
	downPort := down.Addr().(*net.TCPAddr).Port
	down.Close()
	cfg = fmt.Appendf(cfg, "\n[[dicom.ae]]\ntitle = \"PACS\"\nhost = \"127.0.0.1\"\nport = %d\n\n[[dicom.ae]]\ntitle = \"OLDPACS\"\nhost = \"127.0.0.1\"\nport = %d\n\n[[dicom.ae]]\ntitle = \"DOWNPACS\"\nhost = \"127.0.0.1\"\nport = %d\n", okPort, implicitPort, downPort)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	study, paths, err := synth.WriteCT(src, synth.CTOptions{Slices: 60, Rows: 32, Cols: 32, Seed: 77})
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, "import", src)

	var stderr bytes.Buffer
	out, err := f.RunContext(t.Context(), &stderr, "send", "--study", study, "--to", "PACS")
	if err != nil {
		t.Fatalf("send: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(out), "sent 60 instances to PACS") || !strings.Contains(string(out), "60 stored") {
		t.Errorf("send output: %s", out)
	}
	if !strings.Contains(stderr.String(), "sent 60/60 instances to PACS") {
		t.Errorf("send progress: %s", stderr.String())
	}
	got := map[string][]byte{}
	files, _ := filepath.Glob(filepath.Join(okDir, "*"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		got[string(dataSet(b))] = nil
	}
	if len(files) != len(paths) {
		t.Fatalf("storescp received %d files, want %d", len(files), len(paths))
	}
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		if _, ok := got[string(dataSet(b))]; !ok {
			t.Errorf("%s: not received bit-exact", filepath.Base(p))
		}
	}

	_, err = f.Run("send", "--study", study, "--to", "OLDPACS")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "accepts none of the SOP class and transfer syntax pairs held") {
		t.Errorf("send to an implicit-only AE: %v", err)
	}
	if left, _ := os.ReadDir(implicitDir); len(left) != 0 {
		t.Errorf("the implicit-only AE received %d files", len(left))
	}
	// A PACS that is down: the progress does not count the instances it
	// never got as sent.
	stderr.Reset()
	_, err = f.RunContext(t.Context(), &stderr, "send", "--study", study, "--to", "DOWNPACS")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("send to an AE that is down: %v", err)
	}
	if strings.Contains(stderr.String(), "sent 60/60") || !strings.Contains(stderr.String(), "sent 0/60 instances to DOWNPACS (60 not stored)") {
		t.Errorf("send to an AE that is down, progress: %s", stderr.String())
	}
	_, err = f.Run("send", "--study", study, "--to", "NOBODY")
	if exitCode(err) == 0 || !strings.Contains(err.Error(), `no AE is called "NOBODY"`) {
		t.Errorf("send to an unknown AE: %v", err)
	}
}
