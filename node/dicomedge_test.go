package node

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

// echo runs DCMTK's echoscu from calling AE aet against n; extra flags
// (TLS) go before the address.
func echo(t *testing.T, n *tnode, aet string, extra ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	args := append([]string{"-aet", aet, "-aec", n.cfg.AETitle}, extra...)
	out, err := exec.Command("echoscu", append(args, host, port)...).CombinedOutput()
	return string(out), err
}

// An AE added through the registry (what `pacsnet ae add` calls) may
// associate at once; once removed it is rejected as an unknown calling
// AE. A config-defined AE cannot be removed through it.
func TestAEAddRemoveAdmission(t *testing.T) {
	needTool(t, "echoscu")
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "PACS", Host: "127.0.0.1", Port: 104}}
	}})
	if out, err := echo(t, n, "WS1"); err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
		t.Fatalf("echoscu before ae add: %v\n%s", err, out)
	}
	if _, err := n.aes.Add(AE{Title: "WS1", Host: "127.0.0.1", Port: 11112}, "admin"); err != nil {
		t.Fatal(err)
	}
	if out, err := echo(t, n, "WS1"); err != nil {
		t.Fatalf("echoscu after ae add: %v\n%s", err, out)
	}
	if _, err := n.aes.Remove("WS1", "admin"); err != nil {
		t.Fatal(err)
	}
	if out, err := echo(t, n, "WS1"); err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
		t.Fatalf("echoscu after ae remove: %v\n%s", err, out)
	}
	if _, err := n.aes.Remove("PACS", "admin"); err == nil {
		t.Fatal("removed a config-defined AE")
	}
	// restrict_address: an AE bound to another host is refused from
	// loopback.
	if _, err := n.aes.Add(AE{Title: "WS2", Host: "192.0.2.7", Port: 104, RestrictAddress: true}, "admin"); err != nil {
		t.Fatal(err)
	}
	if out, err := echo(t, n, "WS2"); err == nil || !strings.Contains(out, "Calling AE Title Not Recognized") {
		t.Fatalf("echoscu from a restricted AE's wrong address: %v\n%s", err, out)
	}
	if _, err := n.aes.Add(AE{Title: "WS2", Host: "127.0.0.1", Port: 104, RestrictAddress: true}, "admin"); err != nil {
		t.Fatal(err)
	}
	if out, err := echo(t, n, "WS2"); err != nil {
		t.Fatalf("echoscu from a restricted AE's address: %v\n%s", err, out)
	}
}
