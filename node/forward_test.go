package node

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// shortForwardBackoff makes the forwarder retry within the test's time.
func shortForwardBackoff(t *testing.T) {
	minB, maxB := forwardMinBackoff, forwardMaxBackoff
	forwardMinBackoff, forwardMaxBackoff = 100*time.Millisecond, 400*time.Millisecond
	t.Cleanup(func() { forwardMinBackoff, forwardMaxBackoff = minB, maxB })
}

// freeLoopbackPort is a port nothing listens on (for now).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// storescpAt starts DCMTK's storescp on port writing into dir; it is
// stopped by PID when the test ends.
func storescpAt(t *testing.T, aet string, port int, dir string, extra ...string) {
	t.Helper()
	args := append([]string{"-aet", aet, "-od", dir}, extra...)
	cmd := exec.Command("storescp", append(args, strconv.Itoa(port))...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("storescp:\n%s", logs.String())
		}
	})
	waitFor(t, 10*time.Second, "storescp listening", func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// forwardingPair makes St Mary, which imports and grants a study, and
// Riverside, which forwards what it fetches to the AE PACS on port.
func forwardingPair(t *testing.T, port int, seed int64) (stMary, riverside *tnode, study string, files []synth.File) {
	t.Helper()
	stMary = newNode(t, "St Mary")
	riverside = newNode(t, "Riverside", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "PACS", Host: "127.0.0.1", Port: port}}
		c.DICOM.ForwardTo = "PACS"
	}})
	link(t, stMary, riverside)
	study, files = ctStudy(t, seed, 3, "FORWARD^ME")
	importFiles(t, stMary, files)
	grant(t, stMary, riverside, study)
	waitShared(t, riverside, stMary, study, "available", 1, deliverTimeout)
	return stMary, riverside, study, files
}

func fetchDone(t *testing.T, n *tnode, study string) {
	t.Helper()
	if st := fetchWait(t, n, study, 20*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
}

// waitForwarded waits until storescp in dir received every file and the
// forward queue is empty, and checks the forward is audited.
func waitForwarded(t *testing.T, n *tnode, dir, study string, files []synth.File) {
	t.Helper()
	waitFor(t, 20*time.Second, "the PACS to receive the fetched study and the queue to empty", func() bool {
		items, err := n.forward.Pending()
		return err == nil && len(items) == 0 && len(receivedDataSets(t, dir)) == len(files)
	})
	wantDataSets(t, receivedDataSets(t, dir), files)
	e := waitAudit(t, n, consent.Entry{Action: actDICOMForward, Study: study, Reason: "to:PACS"})
	if e.Actor != "system" || e.Decision != consent.DecisionAllow {
		t.Errorf("forward audited as %+v", e)
	}
}

// A study fetched from a partner is sent to dicom.forward_to once the
// fetch completes: storescp receives the exact data sets, the queue
// empties, the forward is audited.
func TestForwardFetchedStudy(t *testing.T) {
	needTool(t, "storescp")
	port, dir := storescp(t, "PACS")
	_, riverside, study, files := forwardingPair(t, port, 71)
	fetchDone(t, riverside, study)
	waitForwarded(t, riverside, dir, study, files)
	st, err := riverside.apiServer().statusReport()
	if err != nil || st.ForwardTo != "PACS" || st.ForwardsPending != 0 {
		t.Errorf("status: forward_to %q pending %d, %v", st.ForwardTo, st.ForwardsPending, err)
	}
}

// With the PACS down the item stays queued, with its attempts and last
// error in status, and is retried with backoff until the PACS is up.
func TestForwardRetriesUntilThePACSIsUp(t *testing.T) {
	needTool(t, "storescp")
	shortForwardBackoff(t)
	port := freeLoopbackPort(t)
	_, riverside, study, files := forwardingPair(t, port, 72)
	fetchDone(t, riverside, study)
	var item ForwardItem
	waitFor(t, 10*time.Second, "a failed forward attempt", func() bool {
		items, _ := riverside.forward.Pending()
		if len(items) == 1 && items[0].Attempts >= 2 {
			item = items[0]
			return true
		}
		return false
	})
	if item.Study != study || item.AE != "PACS" || !strings.Contains(item.LastErr, "PACS") || item.Refused {
		t.Errorf("queued item: %+v", item)
	}
	st, err := riverside.apiServer().statusReport()
	if err != nil || st.ForwardsPending != 1 || st.ForwardLastError == "" {
		t.Errorf("status while the PACS is down: pending %d, last error %q, %v", st.ForwardsPending, st.ForwardLastError, err)
	}
	if len(findAudit(t, riverside, consent.Entry{Action: actDICOMForward})) != 0 {
		t.Error("a forward that failed is audited as done")
	}
	dir := t.TempDir()
	storescpAt(t, "PACS", port, dir)
	waitForwarded(t, riverside, dir, study, files)
}

// A queued forward survives a restart of the node: the record is in the
// archive, and the restarted node delivers it.
func TestForwardSurvivesRestart(t *testing.T) {
	needTool(t, "storescp")
	shortForwardBackoff(t)
	port := freeLoopbackPort(t)
	_, riverside, study, files := forwardingPair(t, port, 73)
	fetchDone(t, riverside, study)
	waitFor(t, 10*time.Second, "a failed forward attempt", func() bool {
		items, _ := riverside.forward.Pending()
		return len(items) == 1 && items[0].Attempts >= 1
	})
	riverside = riverside.restart(nil)
	if items, err := riverside.forward.Pending(); err != nil || len(items) != 1 || items[0].Study != study {
		t.Fatalf("after the restart the queue holds %+v, %v", items, err)
	}
	dir := t.TempDir()
	storescpAt(t, "PACS", port, dir)
	waitForwarded(t, riverside, dir, study, files)
}

// A forward_to that names no known AE keeps the item queued with a clear
// error until the AE is added; then the study goes.
func TestForwardWaitsForAnUnknownAE(t *testing.T) {
	needTool(t, "storescp")
	shortForwardBackoff(t)
	port, dir := storescp(t, "PACS")
	stMary := newNode(t, "St Mary")
	riverside := newNode(t, "Riverside", nodeSetup{cfg: func(c *Config) { c.DICOM.ForwardTo = "PACS" }})
	link(t, stMary, riverside)
	study, files := ctStudy(t, 74, 2, "FORWARD^LATER")
	importFiles(t, stMary, files)
	grant(t, stMary, riverside, study)
	waitShared(t, riverside, stMary, study, "available", 1, deliverTimeout)
	fetchDone(t, riverside, study)
	waitFor(t, 10*time.Second, "a failed forward attempt", func() bool {
		items, _ := riverside.forward.Pending()
		return len(items) == 1 && strings.Contains(items[0].LastErr, "no known AE")
	})
	if _, err := riverside.aes.Add(AE{Title: "PACS", Host: "127.0.0.1", Port: port}, "admin"); err != nil {
		t.Fatal(err)
	}
	waitForwarded(t, riverside, dir, study, files)
}

// A study that gains instances (a new manifest version, fetched again)
// is forwarded again with them.
func TestForwardAgainWhenTheStudyGrows(t *testing.T) {
	needTool(t, "storescp")
	port, dir := storescp(t, "PACS")
	stMary, riverside, study, files := forwardingPair(t, port, 75)
	fetchDone(t, riverside, study)
	waitForwarded(t, riverside, dir, study, files)

	_, more := ctStudy(t, 75, 5, "FORWARD^ME") // same seed: the same study with more slices
	var added []synth.File
	have := map[string]bool{}
	for _, f := range files {
		have[f.Name] = true
	}
	for _, f := range more {
		if !have[f.Name] {
			added = append(added, f)
		}
	}
	if len(added) == 0 {
		t.Fatal("no new instances to add")
	}
	importFiles(t, stMary, added)
	waitShared(t, riverside, stMary, study, "available", 2, deliverTimeout)
	fetchDone(t, riverside, study)
	waitForwarded(t, riverside, dir, study, append(files, added...))
	// The forward is audited once its last C-STORE is answered: a moment
	// after the PACS has written the files waitForwarded looks for.
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for n = len(findAudit(t, riverside, consent.Entry{Action: actDICOMForward, Study: study})); n < 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		n = len(findAudit(t, riverside, consent.Entry{Action: actDICOMForward, Study: study}))
	}
	if n != 2 {
		t.Errorf("%d forwards audited, want 2", n)
	}
}

// A study the PACS refuses (here: it accepts Implicit VR Little Endian
// only, and pacsnet does not transcode) stays queued as refused and does
// not hold up the studies queued after it.
func TestForwardRefusedStudyDoesNotBlockTheQueue(t *testing.T) {
	needTool(t, "storescp")
	shortForwardBackoff(t)
	port, _ := storescp(t, "PACS", "+xi")
	stMary, riverside, first, _ := forwardingPair(t, port, 76)
	second, files := ctStudy(t, 77, 2, "FORWARD^SECOND")
	importFiles(t, stMary, files)
	grant(t, stMary, riverside, second)
	waitShared(t, riverside, stMary, second, "available", 1, deliverTimeout)
	fetchDone(t, riverside, first)
	fetchDone(t, riverside, second)
	waitFor(t, 10*time.Second, "both studies to be tried", func() bool {
		items, _ := riverside.forward.Pending()
		return len(items) == 2 && items[0].Study == first && items[1].Study == second &&
			items[0].Attempts >= 2 && items[1].Attempts >= 2 && items[0].Refused && items[1].Refused
	})
	items, _ := riverside.forward.Pending()
	if !strings.Contains(items[0].LastErr, "transcode") {
		t.Errorf("last error: %q", items[0].LastErr)
	}
}

// An AE that accepts the connection and then answers nothing does not
// hold the queue: the attempt ends after forwardStall and is retried.
func TestForwardStalledAEIsRetried(t *testing.T) {
	shortForwardBackoff(t)
	stall := forwardStall
	forwardStall = 300 * time.Millisecond
	t.Cleanup(func() { forwardStall = stall })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }() // reads, never answers
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	_, riverside, study, _ := forwardingPair(t, ln.Addr().(*net.TCPAddr).Port, 78)
	start := time.Now()
	fetchDone(t, riverside, study)
	waitFor(t, 10*time.Second, "stalled attempts to end", func() bool {
		items, _ := riverside.forward.Pending()
		return len(items) == 1 && items[0].Attempts >= 2 && strings.Contains(items[0].LastErr, "answered nothing")
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("two stalled attempts took %s", d)
	}
}
