package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
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
		ds, err := dicomio.DataSetOf(file)
		if err != nil {
			t.Fatal(err)
		}
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

// Storage commitment (PS3.4 J): the node commits what it holds with the
// SOP class it was sent as, and reports the rest failed, on the same
// association.
func TestStorageCommitment(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
	}})
	_, files, err := synth.CT(synth.CTOptions{Slices: 2, Rows: 32, Cols: 32, Seed: 31})
	if err != nil {
		t.Fatal(err)
	}
	const ct = "1.2.840.10008.5.1.4.1.1.2"
	r := &dimse.Requestor{CallingAE: "MODALITY", CalledAE: n.cfg.AETitle, Contexts: []dimse.ContextRQ{
		{AbstractSyntax: ct, TransferSyntaxes: []string{"1.2.840.10008.1.2.1"}},
		{AbstractSyntax: dimse.StorageCommitment, TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
	}}
	a, err := r.Dial(context.Background(), n.DICOMAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	pc := a.ContextFor(ct, "")
	var sops []string
	for i, f := range files {
		meta, _ := dimse.DecodeDataset(f.Data[132:144+int(binary.LittleEndian.Uint32(f.Data[140:144]))], "1.2.840.10008.1.2.1")
		sop := meta.String(0x00020003)
		sops = append(sops, sop)
		res, err := dimse.Store(context.Background(), a, pc, uint16(i+1), ct, sop, bytes.NewReader(f.Data[144+int(binary.LittleEndian.Uint32(f.Data[140:144])):]), "", 0)
		if err != nil || res.Status != dimse.StatusSuccess {
			t.Fatalf("store: %+v %v", res, err)
		}
	}
	var req dimse.Dataset
	req.Set(tagTransactionUID, "UI", "1.2.3.99")
	var items []dimse.Dataset
	for _, ref := range [][2]string{{ct, sops[0]}, {ct, sops[1]}, {ct, "1.2.3.404"}, {"1.2.840.10008.5.1.4.1.1.4", sops[0]}} {
		var it dimse.Dataset
		it.Set(tagReferencedSOPClass, "UI", ref[0])
		it.Set(tagReferencedSOPInst, "UI", ref[1])
		items = append(items, it)
	}
	req.SetItems(tagReferencedSOPSeq, items)
	body, _ := req.Encode("1.2.840.10008.1.2")
	sc := a.ContextFor(dimse.StorageCommitment, "")
	if err := a.Send(sc.ID, &dimse.Command{Field: dimse.NActionRQ, MessageID: 10, RequestedSOPClass: dimse.StorageCommitment,
		RequestedSOPInstance: dimse.StorageCommitmentID, ActionTypeID: dimse.U16(1)}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	m, err := a.Recv(context.Background())
	if err != nil || m.Command.Field != dimse.NActionRSP || m.Command.Status != dimse.StatusSuccess {
		t.Fatalf("N-ACTION answer: %+v %v", m, err)
	}
	ev, err := a.Recv(context.Background())
	if err != nil || ev.Command.Field != dimse.NEventReportRQ || ev.Command.EventTypeID == nil || *ev.Command.EventTypeID != 2 {
		t.Fatalf("event report: %+v %v", ev, err)
	}
	raw, _ := io.ReadAll(ev.Data)
	rep, err := dimse.DecodeDataset(raw, "1.2.840.10008.1.2")
	if err != nil {
		t.Fatal(err)
	}
	if rep.String(tagTransactionUID) != "1.2.3.99" || len(rep.Find(tagReferencedSOPSeq).Items) != 2 || len(rep.Find(tagFailedSOPSeq).Items) != 2 {
		t.Fatalf("report %+v", rep)
	}
	failed := rep.Find(tagFailedSOPSeq).Items
	if r0 := failed[0].Find(tagFailureReason).Value; binary.LittleEndian.Uint16(r0) != failureNoSuchInstance {
		t.Errorf("failure reason of an unknown instance: % x", r0)
	}
	if r1 := failed[1].Find(tagFailureReason).Value; binary.LittleEndian.Uint16(r1) != failureClassConflict {
		t.Errorf("failure reason of a class conflict: % x", r1)
	}
	if err := a.Send(sc.ID, &dimse.Command{Field: dimse.NEventReportRSP, MessageIDBeingAnswered: ev.Command.MessageID,
		AffectedSOPClass: dimse.StorageCommitment, AffectedSOPInstance: dimse.StorageCommitmentID, EventTypeID: dimse.U16(2)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
}

// The node verifies a known AE with C-ECHO as SCU (pacsnet ae echo): here
// itself; an unknown AE is not-found, one that does not listen is
// unavailable with the reason.
func TestEchoAE(t *testing.T) {
	n := newNode(t, "Alpha")
	_, port, _ := net.SplitHostPort(n.DICOMAddr())
	p, _ := strconv.Atoi(port)
	if _, err := n.aes.Add(AE{Title: n.cfg.AETitle, Host: "127.0.0.1", Port: p}, "admin"); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if _, err := n.aes.Add(AE{Title: "GONE", Host: "127.0.0.1", Port: closed}, "admin"); err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + n.keys.apiToken
	if code, body := apiRaw(t, n, "POST", "/api/v1/aes/"+n.cfg.AETitle+"/echo", auth, nil); code != 200 || !strings.Contains(string(body), `"milliseconds"`) {
		t.Fatalf("echo of itself: %d %s", code, body)
	}
	if code, _ := apiRaw(t, n, "POST", "/api/v1/aes/NOBODY/echo", auth, nil); code != 404 {
		t.Fatalf("echo of an unknown AE: %d", code)
	}
	if code, body := apiRaw(t, n, "POST", "/api/v1/aes/GONE/echo", auth, nil); code != 503 || !strings.Contains(jsonError(t, body), "GONE") {
		t.Fatalf("echo of an AE that does not listen: %d %s", code, body)
	}
}

// A storage commitment report the requestor could not take on its own
// association (it released it) goes on a new association to its AE, with
// this node in the SCP role of Storage Commitment.
func TestStorageCommitmentReportOnNewAssociation(t *testing.T) {
	got := make(chan *dimse.Command, 1)
	ac := &dimse.Acceptor{AETitle: "MODALITY",
		Supports: func(as string) (bool, bool) { return as == dimse.StorageCommitment, true }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		a, err := ac.Accept(conn)
		if err != nil {
			return
		}
		dimse.Serve(context.Background(), a, map[uint16]dimse.HandlerFunc{
			dimse.NEventReportRQ: func(_ context.Context, a *dimse.Assoc, m *dimse.Message) error {
				io.Copy(io.Discard, m.Data)
				got <- m.Command
				return a.Send(m.Context.ID, &dimse.Command{Field: dimse.NEventReportRSP, MessageIDBeingAnswered: m.Command.MessageID,
					AffectedSOPClass: dimse.StorageCommitment, AffectedSOPInstance: dimse.StorageCommitmentID, EventTypeID: m.Command.EventTypeID}, nil)
			},
		})
	}()
	n := newNode(t, "Alpha")
	if _, err := n.aes.Add(AE{Title: "MODALITY", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}, "admin"); err != nil {
		t.Fatal(err)
	}
	var rep dimse.Dataset
	rep.Set(tagTransactionUID, "UI", "1.2.3.98")
	body, _ := rep.Encode("1.2.840.10008.1.2")
	ev := &dimse.Command{Field: dimse.NEventReportRQ, MessageID: 5, AffectedSOPClass: dimse.StorageCommitment,
		AffectedSOPInstance: dimse.StorageCommitmentID, EventTypeID: dimse.U16(1)}
	if err := n.dicom.reportOnNewAssociation(context.Background(), "MODALITY", "1.2.840.10008.1.2", ev, body); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c.EventTypeID == nil || *c.EventTypeID != 1 {
		t.Fatalf("report received: %+v", c)
	}
	if err := n.dicom.reportOnNewAssociation(context.Background(), "STRANGER", "1.2.840.10008.1.2", ev, body); err == nil {
		t.Fatal("reported to an unknown AE")
	}
}
