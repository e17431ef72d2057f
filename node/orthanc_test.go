package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
)

// orthanc is an Orthanc server (the Debian package's binary) run by a
// test on loopback ports with its own storage folder; it is stopped by
// its PID when the test ends.
type orthanc struct {
	http, dicom string // ports
	cmd         *exec.Cmd
}

func startOrthanc(t testing.TB, modalities map[string]any, extra ...map[string]any) *orthanc {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		t.Skip("Orthanc not installed (make deps installs the orthanc package)")
	}
	dir := t.TempDir()
	o := &orthanc{http: freeTCPPort(t), dicom: freeTCPPort(t)}
	hp, _ := strconv.Atoi(o.http)
	dp, _ := strconv.Atoi(o.dicom)
	cfg := map[string]any{
		"Name": "pacsnet-test", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"HttpPort": hp, "DicomPort": dp, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "DicomCheckCalledAet": false, "DicomModalities": modalities,
		"Plugins": []string{}, "DicomAlwaysAllowStore": true, "DicomAlwaysAllowEcho": true,
		"DicomScpTimeout": 10, "StableAge": 1,
	}
	for _, e := range extra {
		for k, v := range e {
			cfg[k] = v
		}
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	o.cmd = exec.Command(bin, path)
	// Orthanc's DICOM side is DCMTK, whose Nagle default costs ~45 ms a
	// C-STORE answer; DCMTK reads this variable.
	o.cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	o.cmd.Stdout, o.cmd.Stderr = &logBuf, &logBuf
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { o.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		o.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			o.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("Orthanc's log:\n%s", logBuf.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := o.rest("GET", "/system", nil); err == nil {
			return o
		}
		select {
		case <-done:
			t.Fatalf("Orthanc exited:\n%s", logBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orthanc did not answer in 30s:\n%s", logBuf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *orthanc) rest(method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, "http://127.0.0.1:"+o.http+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return b, nil
}

func freeTCPPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port := splitAddr(t, ln.Addr().String())
	return port
}

// answersCFind reports whether the node has a C-FIND SCP (Study Root).
func answersCFind(t *testing.T, n *tnode) bool {
	rq := dimse.Requestor{CallingAE: "ORTHANC", CalledAE: n.cfg.AETitle,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{explicitLE}}}}
	a, err := rq.Dial(context.Background(), n.DICOMAddr())
	if err != nil {
		return false
	}
	defer a.Release()
	return a.ContextFor(dimse.StudyRootFind, "") != nil
}

// Orthanc, as a real peer: it sends a study to the node by C-STORE
// (/modalities/{id}/store) and every instance arrives with the data set
// Orthanc was given (SHA-256); it queries the node by C-FIND
// (/modalities/{id}/query) and finds the study, where this build has a
// C-FIND SCP.
func TestOrthancInterop(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "ORTHANC", Host: "127.0.0.1", Port: 104, RestrictAddress: true}}
	}})
	host, port := splitAddr(t, n.DICOMAddr())
	p, _ := strconv.Atoi(port)
	o := startOrthanc(t, map[string]any{"pacsnet": []any{n.cfg.AETitle, host, p}})
	if _, err := n.aes.Add(AE{Title: "ORTHANC", Host: "127.0.0.1", Port: mustAtoi(o.dicom)}, "admin"); err == nil {
		t.Fatal("a config-defined AE was changed through the registry")
	}
	study, files := ctStudy(t, 77, 4, "")
	want := map[string][32]byte{}
	var orthancStudy string
	for _, f := range files {
		b, err := o.rest("POST", "/instances", f.Data)
		if err != nil {
			t.Fatal(err)
		}
		var up struct{ ParentStudy string }
		json.Unmarshal(b, &up)
		orthancStudy = up.ParentStudy
		ds, _, _, sop := splitPart10(f.Data, "")
		want[sop] = sha256.Sum256(ds)
	}
	if _, err := o.rest("POST", "/modalities/pacsnet/echo", []byte("{}")); err != nil {
		t.Fatalf("Orthanc's C-ECHO to the node: %v", err)
	}
	if _, err := o.rest("POST", "/modalities/pacsnet/store", []byte(orthancStudy)); err != nil {
		t.Fatalf("Orthanc's C-STORE to the node: %v", err)
	}
	insts, err := n.Instances(study)
	if err != nil || len(insts) != len(files) {
		t.Fatalf("the node holds %d instances of the study, want %d (%v)", len(insts), len(files), err)
	}
	for sop, sum := range want {
		data, _, err := n.InstanceData(study, sop)
		if err != nil {
			t.Fatal(err)
		}
		ds, _, _, _ := splitPart10(data, "")
		if sha256.Sum256(ds) != sum {
			t.Errorf("%s: the data set stored differs from the one Orthanc was given", sop)
		}
	}

	if !answersCFind(t, n) {
		t.Log("note: this build of the node has no C-FIND SCP yet; Orthanc's C-FIND is not checked")
		return
	}
	q, _ := json.Marshal(map[string]any{"Level": "Study", "Query": map[string]string{"StudyInstanceUID": study}})
	b, err := o.rest("POST", "/modalities/pacsnet/query", q)
	if err != nil {
		t.Fatalf("Orthanc's C-FIND to the node: %v", err)
	}
	var qr struct{ ID string }
	json.Unmarshal(b, &qr)
	b, err = o.rest("GET", "/queries/"+qr.ID+"/answers?expand", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(study)) {
		t.Fatalf("Orthanc's C-FIND found no study %s: %s", study, b)
	}
}

func mustAtoi(s string) int { v, _ := strconv.Atoi(s); return v }

// Orthanc stores to the node over DICOM TLS, presenting a client
// certificate the node's tls_client_ca issued and verifying the node's.
func TestOrthancTLS(t *testing.T) {
	pki := newTestPKI(t)
	n := tlsNode(t, pki, true)
	n.aes.Add(AE{Title: "ORTHANC", Host: "127.0.0.1", Port: 104}, "admin")
	host, port := splitAddr(t, n.DICOMTLSAddr())
	p, _ := strconv.Atoi(port)
	ocert, okey := pki.issue(t, "orthanc")
	o := startOrthanc(t, map[string]any{"pacsnet": map[string]any{"AET": n.cfg.AETitle, "Host": host, "Port": p, "UseDicomTls": true}},
		map[string]any{"DicomTlsEnabled": true, "DicomTlsCertificate": ocert, "DicomTlsPrivateKey": okey,
			"DicomTlsTrustedCertificates": filepath.Join(pki.dir, "ca.crt"), "DicomTlsRemoteCertificateRequired": true})
	study, files := ctStudy(t, 78, 2, "")
	var orthancStudy string
	for _, f := range files {
		b, err := o.rest("POST", "/instances", f.Data)
		if err != nil {
			t.Fatal(err)
		}
		var up struct{ ParentStudy string }
		json.Unmarshal(b, &up)
		orthancStudy = up.ParentStudy
	}
	if _, err := o.rest("POST", "/modalities/pacsnet/store", []byte(orthancStudy)); err != nil {
		t.Fatalf("Orthanc's C-STORE over TLS: %v", err)
	}
	if insts, err := n.Instances(study); err != nil || len(insts) != len(files) {
		t.Fatalf("the node holds %d instances, want %d (%v)", len(insts), len(files), err)
	}
}

// Orthanc retrieves from the node, both ways a PACS does: it queries
// with C-FIND and pulls with C-MOVE (to itself), and the node sends it a
// study with `pacsnet send`; each time Orthanc ends up with the exact
// data sets the node holds (SHA-256).
func TestOrthancRetrievesFromNode(t *testing.T) {
	n := newNode(t, "Alpha")
	o := startOrthanc(t, map[string]any{})
	host, port := splitAddr(t, n.DICOMAddr())
	mod, _ := json.Marshal(map[string]any{"AET": n.cfg.AETitle, "Host": host, "Port": mustAtoi(port)})
	if _, err := o.rest("PUT", "/modalities/pacsnet", mod); err != nil {
		t.Fatalf("tell Orthanc about the node: %v", err)
	}
	if _, err := n.aes.Add(AE{Title: "ORTHANC", Host: "127.0.0.1", Port: mustAtoi(o.dicom)}, "admin"); err != nil {
		t.Fatal(err)
	}
	study, files := ctStudy(t, 78, 3, "")
	importFiles(t, n, files)
	want := map[[32]byte]bool{}
	for _, f := range files {
		ds, _, _, _ := splitPart10(f.Data, "")
		want[sha256.Sum256(ds)] = true
	}
	// orthancHas waits until Orthanc holds the study's instances and
	// checks their data sets, then deletes the study there.
	orthancHas := func(how string) {
		t.Helper()
		var ids []string
		waitFor(t, 20*time.Second, how+": the study at Orthanc", func() bool {
			b, err := o.rest("GET", "/studies", nil)
			if err != nil {
				return false
			}
			json.Unmarshal(b, &ids)
			return len(ids) == 1
		})
		b, _ := o.rest("GET", "/studies/"+ids[0]+"/instances", nil)
		var insts []struct{ ID string }
		json.Unmarshal(b, &insts)
		if len(insts) != len(files) {
			t.Fatalf("%s: Orthanc holds %d instances, want %d", how, len(insts), len(files))
		}
		for _, in := range insts {
			file, err := o.rest("GET", "/instances/"+in.ID+"/file", nil)
			if err != nil {
				t.Fatal(err)
			}
			ds, _, _, _ := splitPart10(file, "")
			if !want[sha256.Sum256(ds)] {
				t.Errorf("%s: instance %s reached Orthanc with another data set", how, in.ID)
			}
		}
		if _, err := o.rest("DELETE", "/studies/"+ids[0], nil); err != nil {
			t.Fatal(err)
		}
	}

	q, _ := json.Marshal(map[string]any{"Level": "Study", "Query": map[string]string{"StudyInstanceUID": study, "PatientName": ""}})
	b, err := o.rest("POST", "/modalities/pacsnet/query", q)
	if err != nil {
		t.Fatalf("Orthanc's C-FIND: %v", err)
	}
	var qr struct{ ID string }
	json.Unmarshal(b, &qr)
	if b, err := o.rest("GET", "/queries/"+qr.ID+"/answers?expand", nil); err != nil || !bytes.Contains(b, []byte(study)) {
		t.Fatalf("Orthanc's C-FIND answers: %s %v", b, err)
	}
	if _, err := o.rest("POST", "/queries/"+qr.ID+"/retrieve", []byte("ORTHANC")); err != nil {
		t.Fatalf("Orthanc's C-MOVE: %v", err)
	}
	orthancHas("C-MOVE")

	st, err := n.sends.Start(study, "ORTHANC", reader{id: "admin", name: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the send to finish", func() bool {
		st, _ = n.sends.Status(st.ID)
		return st.State != api.SendRunning
	})
	if st.State != api.SendDone || st.Completed != len(files) {
		t.Fatalf("pacsnet send to Orthanc: %+v", st)
	}
	orthancHas("pacsnet send")
}
