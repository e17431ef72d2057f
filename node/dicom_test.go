package node

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

func needTool(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs dcmtk)", tool)
		}
	}
}

// A modality stores to the node with DCMTK's storescu: every instance is
// acknowledged only after it is committed, is listed, and reads back with
// the data set it was sent with; an unknown calling AE is rejected and
// audited; C-ECHO answers.
func TestDICOMStoreFromStorescu(t *testing.T) {
	needTool(t, "echoscu", "storescu")
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
	}})
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	if out, err := exec.Command("echoscu", "-aet", "MODALITY", "-aec", n.cfg.AETitle, host, port).CombinedOutput(); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	out, err := exec.Command("echoscu", "-aet", "STRANGER", "-aec", n.cfg.AETitle, host, port).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Calling AE Title Not Recognized") {
		t.Fatalf("echoscu from an unknown AE: %v\n%s", err, out)
	}
	out, err = exec.Command("echoscu", "-aet", "MODALITY", "-aec", "WRONG", host, port).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Called AE Title Not Recognized") {
		t.Fatalf("echoscu to a wrong called AE: %v\n%s", err, out)
	}

	dir := t.TempDir()
	study, paths, err := synth.WriteCT(dir, synth.CTOptions{Slices: 8, Rows: 64, Cols: 64, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("storescu", append([]string{"-aet", "MODALITY", "-aec", n.cfg.AETitle, host, port}, paths...)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	insts, err := n.Instances(study)
	if err != nil || len(insts) != len(paths) {
		t.Fatalf("study has %d instances, want %d (%v)", len(insts), len(paths), err)
	}
	for _, p := range paths {
		file, _ := os.ReadFile(p)
		ds := file[144+int(binary.LittleEndian.Uint32(file[140:144])):]
		found := false
		for _, in := range insts {
			data, _, err := n.InstanceData(study, in.SOPInstanceUID)
			if err == nil && bytes.HasSuffix(data, ds) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no stored instance carries its data set", filepath.Base(p))
		}
	}
	// Sending again is idempotent: success, nothing new.
	cmd = exec.Command("storescu", append([]string{"-aet", "MODALITY", "-aec", n.cfg.AETitle, host, port}, paths[0])...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storescu again: %v\n%s", err, out)
	}
	requireAudit(t, n, consent.Entry{Action: consent.ActImport, Study: study, Actor: "ae:MODALITY"})
	requireAudit(t, n, consent.Entry{Action: actAssociationRejected, Reason: "unknown-calling-ae"})
}
