package node

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

const (
	ctStorage  = "1.2.840.10008.5.1.4.1.1.2"
	explicitLE = "1.2.840.10008.1.2.1"
)

func dialRaw(t *testing.T, n *tnode) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.DICOMAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func pdu(p dimse.PDU) []byte { return dimse.AppendPDU(nil, p) }

func associateRQ(calling, called string) *dimse.AssociateRQ {
	return &dimse.AssociateRQ{ProtocolVersion: 1, CallingAE: calling, CalledAE: called, AppContext: dimse.ApplicationContext,
		Contexts: []dimse.ContextRQ{
			{ID: 1, AbstractSyntax: dimse.Verification, TransferSyntaxes: []string{explicitLE}},
			{ID: 3, AbstractSyntax: ctStorage, TransferSyntaxes: []string{explicitLE}},
		},
		User: dimse.UserInfo{MaxLength: 0, HasMaxLength: true, ImplementationClass: "1.2.3.4"}}
}

// associateRaw opens an association by hand on c (so that the test can
// then misbehave on it).
func associateRaw(t *testing.T, n *tnode, c net.Conn) {
	t.Helper()
	if _, err := c.Write(pdu(associateRQ("MODALITY", n.cfg.AETitle))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := dimse.NewReader(c, 1<<20).Read()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*dimse.AssociateAC); !ok {
		t.Fatalf("got %T, want an A-ASSOCIATE-AC", p)
	}
}

// endsWithin reads what the node sends until it closes the connection,
// which it must do within d; it reports whether an A-ABORT came first.
func endsWithin(t *testing.T, c net.Conn, d time.Duration) (aborted bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the node kept the connection open for %s", d)
	}
	return len(b) >= 10 && b[len(b)-10] == 0x07 // the last PDU: A-ABORT (6-byte header, 4-byte body)
}

func storeCommand(sop string) []byte {
	return (&dimse.Command{Field: dimse.CStoreRQ, MessageID: 1, AffectedSOPClass: ctStorage, AffectedSOPInstance: sop,
		Priority: dimse.PriorityMedium, HasDataSet: true}).Encode()
}

func pdata(ctx byte, command, last bool, data []byte) []byte {
	return pdu(&dimse.PData{Values: []dimse.PDV{{Context: ctx, Command: command, Last: last, Data: data}}})
}

// Each way a peer can break the upper layer protocol ends that peer's
// connection (with an A-ABORT where the protocol allows one) and nothing
// else: after each, the node associates, answers C-ECHO and stores; a
// PDU claiming gigabytes costs no memory; a peer that stalls before its
// association request or in the middle of a data set is cut off after
// ARTIM or the idle timeout, and frees its ingest slot.
func TestDICOMHostilePeers(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
		c.DICOM.IdleTimeout = Duration{time.Second}
		c.DICOM.ARTIMTimeout = Duration{500 * time.Millisecond}
		c.Archive.MaxConcurrentIngests = 1 // a stalled C-STORE that kept its slot would block every other
	}})
	// files[0] is what the hostile peers send (never whole: it must never
	// be stored); files[1+i] is what the node must still store after case i.
	study, files := ctStudy(t, 9, 24, "")
	ds, _, _, sop := splitPart10(files[0].Data, "")

	huge := func(typ byte) []byte {
		b := []byte{typ, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[2:], 0xFFFFFFF0)
		return append(b, make([]byte, 64)...)
	}
	cases := []struct {
		name      string
		associate bool          // open an association first
		send      [][]byte      // then write these
		pause     time.Duration // between writes
		closeAt   int           // close the connection after this many writes (0: never)
		abort     bool          // the node must answer with an A-ABORT
		within    time.Duration
	}{
		{name: "unknown PDU type", send: [][]byte{{0xFF, 0, 0, 0, 0, 4, 0, 0, 0, 0}}, abort: true},
		{name: "garbage", send: [][]byte{[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")}, abort: true},
		{name: "truncated association request", send: [][]byte{pdu(associateRQ("MODALITY", n.cfg.AETitle))[:40]}, closeAt: 1},
		{name: "P-DATA before association", send: [][]byte{pdata(1, true, true, []byte{0, 0})}, abort: true},
		{name: "A-RELEASE-RQ before association", send: [][]byte{pdu(&dimse.ReleaseRQ{})}, abort: true},
		{name: "association request claiming 4 GiB", send: [][]byte{huge(0x01)}, abort: true},
		{name: "P-DATA claiming 4 GiB", associate: true, send: [][]byte{huge(0x04)}, abort: true},
		{name: "second association request", associate: true, send: [][]byte{pdu(associateRQ("MODALITY", n.cfg.AETitle))}, abort: true},
		{name: "A-ASSOCIATE-AC from the requestor", associate: true, send: [][]byte{pdu(&dimse.AssociateAC{ProtocolVersion: 1, CalledAE: "A", CallingAE: "B", AppContext: dimse.ApplicationContext})}, abort: true},
		{name: "PDV on a context not accepted", associate: true, send: [][]byte{pdata(5, true, true, storeCommand(sop))}, abort: true},
		{name: "malformed command set", associate: true, send: [][]byte{pdata(3, true, true, []byte{0, 0, 0, 0, 'U', 'L', 4, 0, 1, 2})}, abort: true},
		{name: "data set without its command", associate: true, send: [][]byte{pdata(3, false, true, ds[:100])}, abort: true},
		{name: "PDV longer than its PDU", associate: true, send: [][]byte{func() []byte {
			b := pdata(3, true, true, storeCommand(sop))
			binary.BigEndian.PutUint32(b[6:], 1<<20)
			return b
		}()}, abort: true},
		{name: "A-ABORT in the middle of a data set", associate: true,
			send: [][]byte{pdata(3, true, true, storeCommand(sop)), pdata(3, false, false, ds[:len(ds)/2]), pdu(&dimse.Abort{})}, closeAt: 3},
		{name: "A-RELEASE-RQ in the middle of a data set", associate: true,
			send: [][]byte{pdata(3, true, true, storeCommand(sop)), pdata(3, false, false, ds[:len(ds)/2]), pdu(&dimse.ReleaseRQ{})}},
		{name: "disconnect in the middle of a data set", associate: true,
			send: [][]byte{pdata(3, true, true, storeCommand(sop)), pdata(3, false, false, ds[:len(ds)/2])}, closeAt: 2},
		{name: "stall in the middle of a data set", associate: true,
			send: [][]byte{pdata(3, true, true, storeCommand(sop)), pdata(3, false, false, ds[:len(ds)/2])}, abort: true, within: 5 * time.Second},
		{name: "silent after connecting", within: 3 * time.Second},
		{name: "dribbling the association request", send: func() [][]byte {
			var out [][]byte
			for _, b := range pdu(associateRQ("MODALITY", n.cfg.AETitle))[:30] {
				out = append(out, []byte{b})
			}
			return out
		}(), pause: 100 * time.Millisecond, within: 5 * time.Second},
		{name: "dribbling a data set", associate: true, send: func() [][]byte {
			out := [][]byte{pdata(3, true, true, storeCommand(sop))}
			p := pdata(3, false, true, ds[:4096])
			for i := 0; i < len(p); i += 64 {
				out = append(out, p[i:min(i+64, len(p))])
			}
			return out
		}(), pause: 100 * time.Millisecond, abort: true, within: 8 * time.Second},
	}
	if len(cases)+1 > len(files) {
		t.Fatalf("%d cases, %d files", len(cases), len(files))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			c := dialRaw(t, n)
			if tc.associate {
				associateRaw(t, n, c)
			}
			for i, b := range tc.send {
				if tc.closeAt > 0 && i == tc.closeAt {
					break
				}
				if _, err := c.Write(b); err != nil {
					break // the node may end it before we are done
				}
				time.Sleep(tc.pause)
			}
			if tc.closeAt > 0 {
				c.Close()
			} else {
				within := tc.within
				if within == 0 {
					within = 3 * time.Second
				}
				if aborted := endsWithin(t, c, within); tc.abort && !aborted {
					t.Errorf("the node closed the connection without an A-ABORT")
				}
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("the node allocated %d MiB", grew>>20)
			}
			echoOK(t, n)
			if _, _, err := n.InstanceData(study, sop); err == nil {
				t.Fatal("the hostile peer's instance was stored")
			}
			// The node still stores (its one ingest slot is free).
			next, _, _, nextSOP := splitPart10(files[1+i].Data, "")
			if res := storeRaw(t, n, ctStorage, explicitLE, nextSOP, next); res.Status != dimse.StatusSuccess {
				t.Fatalf("C-STORE after: status 0x%04X %q", res.Status, res.Comment)
			}
		})
	}
	if _, err := exec.LookPath("echoscu"); err == nil {
		if out, err := echo(t, n, "MODALITY"); err != nil {
			t.Fatalf("echoscu after the hostile peers: %v\n%s", err, out)
		}
	}
	if _, err := exec.LookPath("storescu"); err == nil {
		dir := t.TempDir()
		p := dir + "/ct.dcm"
		os.WriteFile(p, files[0].Data, 0o600)
		host, port := splitAddr(t, n.DICOMAddr())
		if out, err := exec.Command("storescu", "-aet", "MODALITY", "-aec", n.cfg.AETitle, host, port, p).CombinedOutput(); err != nil {
			t.Fatalf("storescu after the hostile peers: %v\n%s", err, out)
		}
	}
}

// Connections that never send their association request are bounded per
// source address: past the bound a new one is closed at once, so a flood
// of idle sockets cannot pile up until ARTIM; when they expire the same
// address is served again.
func TestDICOMPendingConnectionsBounded(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
		c.DICOM.ARTIMTimeout = Duration{time.Second}
	}})
	for range maxPendingPerHost {
		dialRaw(t, n)
	}
	time.Sleep(100 * time.Millisecond) // let the node accept them
	extra := dialRaw(t, n)
	extra.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection past the bound: %v, want it closed at once", err)
	}
	time.Sleep(1500 * time.Millisecond) // ARTIM ends the silent ones
	echoOK(t, n)
}

// Association limits: past max_associations_per_ae for one calling AE, or
// max_associations in all, a request is rejected as transient, local
// limit exceeded (PS3.8 9.3.4); the others are unaffected and a freed
// slot is usable again.
func TestDICOMAssociationLimits(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}, {Title: "WS1", Host: "127.0.0.1", Port: 104},
			{Title: "WS2", Host: "127.0.0.1", Port: 104}}
		c.DICOM.MaxAssociations = 2
		c.DICOM.MaxAssociationsPerAE = 1
	}})
	open := func(calling string) (*dimse.Assoc, error) {
		rq := dimse.Requestor{CallingAE: calling, CalledAE: n.cfg.AETitle,
			Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.Verification, TransferSyntaxes: []string{explicitLE}}}}
		return rq.Dial(t.Context(), n.DICOMAddr())
	}
	localLimit := func(err error) bool {
		var rj *dimse.RejectedError
		return errors.As(err, &rj) && rj.RJ.Result == dimse.RejectTransient &&
			rj.RJ.Source == dimse.RejectSourcePresentation && rj.RJ.Reason == dimse.RejectLocalLimit
	}
	a1, err := open("MODALITY")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open("MODALITY"); !localLimit(err) {
		t.Fatalf("second association of one AE: %v, want transient local-limit rejection", err)
	}
	a2, err := open("WS1")
	if err != nil {
		t.Fatalf("another AE within the total: %v", err)
	}
	if _, err := open("WS2"); !localLimit(err) {
		t.Fatalf("past the total: %v, want transient local-limit rejection", err)
	}
	if err := dimse.Echo(t.Context(), a1, 1); err != nil {
		t.Fatalf("the admitted association: %v", err)
	}
	a1.Release()
	a2.Release()
	waitFor(t, 5*time.Second, "slots to be freed", func() bool {
		a, err := open("WS2")
		if err == nil {
			a.Release()
		}
		return err == nil
	})
	if needTool := exec.Command("echoscu", "--version"); needTool.Run() == nil {
		out, err := echo(t, n, "MODALITY")
		if err != nil {
			t.Fatalf("echoscu: %v\n%s", err, out)
		}
	}
}

// A C-STORE whose association is aborted, or whose connection drops, in
// the middle of a half-megabyte data set stores nothing and keeps
// nothing: the ciphertext already written for it is freed at once.
func TestDICOMCutOffInstanceKeepsNothing(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
	}})
	if !store.PunchSupported(n.home) {
		t.Skip("this file system cannot punch holes")
	}
	study, files := ctStudyOf(t, synth.CTOptions{Slices: 3, Seed: 12, Rows: 512, Cols: 512})
	// A first instance, stored, so that the blob log exists.
	first, _, _, firstSOP := splitPart10(files[0].Data, "")
	if res := storeRaw(t, n, ctStorage, explicitLE, firstSOP, first); res.Status != dimse.StatusSuccess {
		t.Fatalf("C-STORE: status 0x%04X %q", res.Status, res.Comment)
	}
	for i, abort := range []bool{true, false} {
		ds, _, _, sop := splitPart10(files[1+i].Data, "")
		base := blobAllocated(t, n)
		c := dialRaw(t, n)
		associateRaw(t, n, c)
		c.Write(pdata(3, true, true, storeCommand(sop)))
		part := ds[:len(ds)*3/4]
		for off := 0; off < len(part); off += 16 << 10 {
			c.Write(pdata(3, false, false, part[off:min(off+16<<10, len(part))]))
		}
		if abort {
			c.Write(pdu(&dimse.Abort{}))
		}
		c.Close()
		// The node notices, drops the instance and frees what it wrote
		// before the association ends.
		waitFor(t, 10*time.Second, "the association to end", func() bool { return n.dicom.associations() == 0 })
		if grew := blobAllocated(t, n) - base; grew > 16<<10 {
			t.Errorf("abort %v: a cut-off %d-byte instance left %d bytes in the blob log", abort, len(ds), grew)
		}
		if _, _, err := n.InstanceData(study, sop); err == nil {
			t.Fatal("a cut-off instance was stored")
		}
	}
	echoOK(t, n)
}
