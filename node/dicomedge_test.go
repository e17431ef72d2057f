package node

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
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

// storeRaw sends one data set by C-STORE on a new association with a
// context for (class, ts) and returns the answer.
func storeRaw(t *testing.T, n *tnode, class, ts, sop string, ds []byte) dimse.StoreResult {
	t.Helper()
	ctx := context.Background()
	rq := dimse.Requestor{CallingAE: "MODALITY", CalledAE: n.cfg.AETitle,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: class, TransferSyntaxes: []string{ts}}}}
	a, err := rq.Dial(ctx, n.DICOMAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	pc := a.ContextFor(class, ts)
	if pc == nil {
		t.Fatal("context not accepted")
	}
	res, err := dimse.Store(ctx, a, pc, 1, class, sop, bytes.NewReader(ds), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A data set whose SOP Instance or SOP Class UID is not the one its
// C-STORE announced is refused with A900 and an Error Comment, and
// nothing is stored under either identity (it used to be stored under
// the data set's UID with a warning).
func TestCStoreIdentityMismatch(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
	}})
	study, files := ctStudy(t, 5, 2, "")
	ds, ts, class, sop := splitPart10(files[0].Data, "")
	const explicitLE = "1.2.840.10008.1.2.1"
	if ts != explicitLE || class == "" || sop == "" {
		t.Fatalf("synthetic CT: ts %s class %s sop %s", ts, class, sop)
	}
	res := storeRaw(t, n, class, ts, sop+".9", ds)
	if res.Status != dimse.StatusIdentifierMismatch || !strings.Contains(res.Comment, "SOP Instance UID (0008,0018) differs") {
		t.Errorf("other SOP instance: status 0x%04X %q, want A900", res.Status, res.Comment)
	}
	const mrStorage = "1.2.840.10008.5.1.4.1.1.4"
	res = storeRaw(t, n, mrStorage, ts, sop, ds)
	if res.Status != dimse.StatusIdentifierMismatch || !strings.Contains(res.Comment, "SOP Class UID (0008,0016) differs") {
		t.Errorf("other SOP class: status 0x%04X %q, want A900", res.Status, res.Comment)
	}
	if insts, _ := n.Instances(study); len(insts) != 0 {
		t.Fatalf("%d instances stored", len(insts))
	}
	// The same data set announced rightly is stored.
	if res := storeRaw(t, n, class, ts, sop, ds); res.Status != dimse.StatusSuccess {
		t.Fatalf("status 0x%04X %q", res.Status, res.Comment)
	}
	// Another instance under a stored UID: a warning whose comment fits
	// an LO (64 characters; longer ones made the answer undecodable).
	other, _, _, _ := splitPart10(files[1].Data, "")
	res = storeRaw(t, n, class, ts, sop, append(bytes.Clone(ds[:len(ds)-2]), other[len(other)-2:]...))
	if res.Status&0xF000 == 0xA000 || res.Status&0xF000 == 0xC000 || res.Comment == "" || len(res.Comment) > 64 {
		t.Errorf("changed instance: status 0x%04X %q", res.Status, res.Comment)
	}
}

// Out of resources: when every ingest slot stays taken past the wait
// (half the idle timeout), C-STORE answers A700 with a comment, and the
// association and node go on; once a slot frees, the same instance is
// stored.
func TestCStoreOutOfResources(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
		c.DICOM.IdleTimeout = Duration{time.Second}
		c.Archive.MaxConcurrentIngests = 1
	}})
	_, files := ctStudy(t, 6, 1, "")
	ds, ts, class, sop := splitPart10(files[0].Data, "")
	n.ingest.slots <- struct{}{} // another ingest holds the only slot
	res := storeRaw(t, n, class, ts, sop, ds)
	<-n.ingest.slots
	if res.Status != dimse.StatusOutOfResources || !strings.Contains(res.Comment, "too many instances in flight") {
		t.Fatalf("status 0x%04X %q, want A700", res.Status, res.Comment)
	}
	if res := storeRaw(t, n, class, ts, sop, ds); res.Status != dimse.StatusSuccess {
		t.Fatalf("after the slot freed: status 0x%04X %q", res.Status, res.Comment)
	}
}

// Every ingest outcome has its C-STORE status (PS3.4 B.2.3), with an
// Error Comment that fits an LO wherever the status is not success.
func TestStoreStatus(t *testing.T) {
	cmd := &dimse.Command{AffectedSOPInstance: "1.2.3"}
	for _, tc := range []struct {
		res  ImportResult
		want uint16
	}{
		{ImportResult{Outcome: OutcomeStored}, dimse.StatusSuccess},
		{ImportResult{Outcome: OutcomeDuplicate}, dimse.StatusSuccess},
		{ImportResult{Outcome: OutcomeDuplicate, OtherSyntax: true}, dimse.StatusWarningCoercion},
		{ImportResult{Outcome: OutcomeConflict}, dimse.StatusWarningCoercion},
		{ImportResult{Outcome: OutcomeRejected, Code: "too-large", Error: "instance larger than " + strings.Repeat("9", 80)}, dimse.StatusOutOfResources},
		{ImportResult{Outcome: OutcomeRejected, Code: "missing-attribute", Error: "no SOP Class UID"}, dimse.StatusIdentifierMismatch},
		{ImportResult{Outcome: OutcomeRejected, Code: "identity-mismatch", Error: "differs"}, dimse.StatusIdentifierMismatch},
		{ImportResult{Outcome: OutcomeRejected, Code: "truncated", Error: "truncated\x1b[2J"}, dimse.StatusCannotUnderstand},
		{ImportResult{Outcome: OutcomeFailed, Code: "busy"}, dimse.StatusOutOfResources},
		{ImportResult{Outcome: OutcomeFailed, Code: "insufficient-storage"}, dimse.StatusOutOfResources},
		{ImportResult{Outcome: OutcomeFailed, Error: "database"}, dimse.StatusOutOfResources},
	} {
		status, comment := storeStatus(tc.res, cmd)
		if status != tc.want {
			t.Errorf("%+v: status 0x%04X, want 0x%04X", tc.res, status, tc.want)
		}
		if status != dimse.StatusSuccess && (comment == "" || len(comment) > 64) {
			t.Errorf("%+v: comment %q", tc.res, comment)
		}
		c := &dimse.Command{Field: dimse.CStoreRSP, Status: status, ErrorComment: clip(comment, 64)}
		if _, err := dimse.DecodeCommand(c.Encode()); err != nil {
			t.Errorf("%+v: the answer does not decode: %v", tc.res, err)
		}
	}
}

// The AE routes answer their error codes: a bad AE and a config-defined
// one are bad-request (400) with the reason, an unknown one not-found
// (404); an AE title with a slash or spaces travels in the path.
func TestAPIAEs(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "PACS", Host: "127.0.0.1", Port: 104}}
	}})
	post := func(req api.AddAERequest) (int, []byte) {
		body, _ := json.Marshal(req)
		return apiRaw(t, n, "POST", "/api/v1/aes", "Bearer "+n.keys.apiToken, body)
	}
	del := func(title string) (int, []byte) {
		return apiRaw(t, n, "DELETE", "/api/v1/aes/"+url.PathEscape(title), "Bearer "+n.keys.apiToken, nil)
	}
	if code, b := post(api.AddAERequest{Title: "CT 1/A", Host: "10.0.0.1", Port: 104}); code != 200 {
		t.Fatalf("add: %d %s", code, b)
	}
	for _, tc := range []struct {
		req  api.AddAERequest
		want string
	}{
		{api.AddAERequest{Title: "", Host: "h", Port: 1}, "AE title: must be 1-16 characters"},
		{api.AddAERequest{Title: "A\\B", Host: "h", Port: 1}, "default repertoire"},
		{api.AddAERequest{Title: "A", Host: "", Port: 1}, "host:"},
		{api.AddAERequest{Title: "A", Host: "h", Port: 0}, "port: want 1-65535"},
		{api.AddAERequest{Title: "PACS", Host: "h", Port: 1}, `AE "PACS" is defined in config.toml; change it there`},
	} {
		code, b := post(tc.req)
		if msg := jsonError(t, b); code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("%+v: %d %q, want 400 %q", tc.req, code, msg, tc.want)
		}
	}
	if code, b := del("PACS"); code != 400 || !strings.Contains(jsonError(t, b), "remove it there") {
		t.Errorf("remove a config AE: %d %s", code, b)
	}
	if code, b := del("NOBODY"); code != 404 {
		t.Errorf("remove an unknown AE: %d %s", code, b)
	}
	var gone api.AE
	code, b := del("CT 1/A")
	if json.Unmarshal(b, &gone); code != 200 || gone.Title != "CT 1/A" || gone.Source != api.AESourceAPI {
		t.Fatalf("remove: %d %s", code, b)
	}
	var list []api.AE
	if code := apiCall(t, n, "GET", "/api/v1/aes", nil, &list); code != 200 || len(list) != 1 || list[0].Title != "PACS" || list[0].Source != api.AESourceConfig {
		t.Fatalf("list: %d %+v", code, list)
	}
}
