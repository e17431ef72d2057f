package node

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/internal/rsyslogtest"
)

// syslogSeqs is the seq of every audit entry the collector received (the
// structured data carries it), in order.
func syslogSeqs(t *testing.T, c *rsyslogtest.Collector) []uint64 {
	t.Helper()
	lines, err := c.Lines()
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, l := range lines {
		_, rest, ok := bytes.Cut(l, []byte(`[pacsnet@32473 seq="`))
		if !ok {
			t.Fatalf("a line without the entry's seq: %q", l)
		}
		var seq uint64
		fmt.Sscanf(string(rest), "%d", &seq)
		out = append(out, seq)
	}
	return out
}

// The audit trail streamed to a real syslog collector (issue 8): every
// entry arrives as a DICOM audit message in an RFC 5424 line; entries
// written while the collector is down arrive once it is back (none lost);
// status reports the stream and its backlog.
func TestAuditSyslogStream(t *testing.T) {
	col := rsyslogtest.New(t, nil)
	col.Start()
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.Audit.Syslog = SyslogConfig{Addr: col.Addr(), Format: "dicom"}
	}})
	record := func(n int) {
		for range n {
			if err := a.audit.Record(consent.Entry{Actor: "admin", Action: consent.ActExport, Study: "1.2.3"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := func() bool {
		seen := map[uint64]bool{}
		for _, s := range syslogSeqs(t, col) {
			seen[s] = true
		}
		for s := uint64(1); s <= a.ledger.Head(); s++ {
			if !seen[s] {
				return false
			}
		}
		return true
	}
	record(20)
	waitFor(t, 20*time.Second, "every entry at the collector", all)
	lines, _ := col.Lines()
	if !bytes.Contains(lines[0], []byte("DICOM+RFC3881")) || !bytes.Contains(lines[0], []byte("<AuditMessage>")) {
		t.Errorf("not a DICOM audit message in syslog: %.300s", lines[0])
	}

	// The collector goes down; the node keeps auditing; nothing is lost.
	col.Stop()
	record(30)
	var st api.Status
	waitFor(t, 20*time.Second, "the backlog in status", func() bool {
		apiCall(t, a, "GET", "/api/v1/status", nil, &st)
		return st.AuditShipping != nil && !st.AuditShipping.Connected && st.AuditShipping.Backlog > 0
	})
	if st.Health != api.HealthDegraded || !strings.Contains(strings.Join(st.Problems, " "), "the audit stream to "+col.Addr()) {
		t.Errorf("status while the collector is down: %s %v", st.Health, st.Problems)
	}
	col.Start()
	waitFor(t, 40*time.Second, "the entries written while the collector was down", all)
	waitFor(t, 20*time.Second, "status after catching up", func() bool {
		apiCall(t, a, "GET", "/api/v1/status", nil, &st)
		return st.AuditShipping.Connected && st.AuditShipping.Backlog == 0 && st.AuditShipping.Shipped == a.ledger.Head()
	})
}

// GET /api/v1/audit/export writes the log in each format, one entry per
// line, and audits the export.
func TestAuditExport(t *testing.T) {
	a := newNode(t, "Alpha")
	for range 5 {
		a.audit.Record(consent.Entry{Actor: "admin", Action: consent.ActExport, Study: "1.2.3"})
	}
	get := func(q string) (int, []string) {
		code, body := apiRaw(t, a, http.MethodGet, "/api/v1/audit/export"+q, "Bearer "+a.keys.apiToken, nil)
		return code, strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	}
	code, lines := get("?format=json")
	if code != http.StatusOK || len(lines) != 5 {
		t.Fatalf("json: %d, %d lines: %s", code, len(lines), strings.Join(lines, "\n"))
	}
	prev := strings.Repeat("0", 64)
	for i, l := range lines {
		var e consent.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq != uint64(i+1) || e.Prev != prev {
			t.Fatalf("json line %d: %v %+v", i, err, e)
		}
		if h, err := e.ComputeHash(); err != nil || h != e.Hash {
			t.Fatalf("json line %d does not hash to its hash: %v", i, err)
		}
		prev = e.Hash
	}
	code, lines = get("?format=dicom&action=export")
	if code != http.StatusOK || len(lines) != 5 {
		t.Fatalf("dicom: %d, %d lines", code, len(lines))
	}
	for i, l := range lines {
		var m struct {
			XMLName xml.Name
		}
		if err := xml.Unmarshal([]byte(l), &m); err != nil || m.XMLName.Local != "AuditMessage" || !strings.Contains(l, `csd-code="110106"`) {
			t.Fatalf("dicom line %d: %v %.200s", i, err, l)
		}
	}
	for _, f := range []string{"syslog", "syslog-dicom"} {
		code, lines = get("?format=" + f + "&action=export")
		if code != http.StatusOK || len(lines) != 5 || !strings.HasPrefix(lines[0], "<") || !strings.Contains(lines[0], ">1 ") {
			t.Fatalf("%s: %d %q", f, code, lines[0])
		}
	}
	if code, _ := get("?format=csv"); code != http.StatusBadRequest {
		t.Errorf("unknown format: %d", code)
	}
	requireAudit(t, a, consent.Entry{Action: api.ActAuditExported, Reason: "format=dicom"})
}
