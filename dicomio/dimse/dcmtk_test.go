package dimse

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio"
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

// Our C-STORE SCU sends to DCMTK's storescp, which writes what it
// received: the files match the data sets sent.
func TestDCMTKStoreSCP(t *testing.T) {
	needDCMTK(t, "storescp")
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command("storescp", "-aet", "STORESCP", "-od", dir, "--accept-all", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	_, files, err := synth.CT(synth.CTOptions{Slices: 3, Rows: 64, Cols: 64, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	r := &Requestor{CallingAE: "PACSNET", CalledAE: "STORESCP",
		Contexts: []ContextRQ{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1"}}}}
	var a *Assoc
	for i := 0; i < 50; i++ { // storescp needs a moment to listen
		if a, err = r.Dial(context.Background(), "127.0.0.1:"+port); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	pc := a.ContextFor("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
	for i, f := range files {
		ds := datasetOf(t, f.Data)
		res, err := Store(context.Background(), a, pc, uint16(i+1), "1.2.840.10008.5.1.4.1.1.2", sopInstanceOf(t, f.Data), bytes.NewReader(ds), "", 0)
		if err != nil || !res.OK() {
			t.Fatalf("store %s: %+v %v", f.Name, res, err)
		}
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(written) != len(files) {
		t.Fatalf("storescp wrote %d files, want %d", len(written), len(files))
	}
	for _, w := range written {
		b, _ := os.ReadFile(w)
		found := false
		for _, f := range files {
			if bytes.HasSuffix(b, datasetOf(t, f.Data)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s matches no data set sent", filepath.Base(w))
		}
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// datasetOf strips a Part-10 file's preamble and meta group.
func datasetOf(t *testing.T, file []byte) []byte {
	t.Helper()
	ds, err := dicomio.DataSetOf(file)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func sopInstanceOf(t *testing.T, file []byte) string {
	t.Helper()
	meta, err := DecodeDataset(file[132:144+int(binary.LittleEndian.Uint32(file[140:144]))], "1.2.840.10008.1.2.1")
	if err != nil {
		t.Fatal(err)
	}
	return meta.String(0x00020003)
}
