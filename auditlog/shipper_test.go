package auditlog

import (
	"crypto/tls"
	"github.com/pacsnet/pacsnet/internal/rsyslogtest"
	"path/filepath"
	"testing"
	"time"
)

// (a) 200 entries in each format arrive at rsyslog once each, in order,
// and parse back.
func TestRsyslogDelivers(t *testing.T) {
	for _, format := range []Format{FormatJSON, FormatDICOM} {
		t.Run(format.String(), func(t *testing.T) {
			rs := newRsyslog(t, nil)
			rs.start()
			var l limitReader
			l.addMany(t, 200, newPeer(t))
			cur := &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
			cfg := testConfig(rs.addr(), format)
			s, _ := runShipper(t, cfg, &l, cur)
			rs.waitFor(format, "200 messages", func(seqs []uint64) bool { return len(seqs) >= 200 })
			waitShipped(t, s, 200)
			seqs, err := rs.received(format)
			if err != nil {
				t.Fatal(err)
			}
			if !inOrderOnce(seqs, 200) {
				t.Fatalf("received %d messages, not 1..200 in order: %v", len(seqs), tail(seqs))
			}
			if got := loadCursor(t, cur); got != 200 {
				t.Errorf("cursor %d", got)
			}
			if got := l.largest(); got > cfg.Batch {
				t.Errorf("read %d entries at once; Batch is %d", got, cfg.Batch)
			}
			if st := s.Status(); !st.Connected || st.Backlog != 0 || st.LastError != "" || st.LastSent.IsZero() {
				t.Errorf("status %+v", st)
			}
		})
	}
}

// (b) The collector is down when the shipper starts and for a while;
// everything written meanwhile arrives once it is up.
func TestRsyslogDownAtStart(t *testing.T) {
	rs := newRsyslog(t, nil)
	var l memLedger
	p := newPeer(t)
	l.addMany(t, 40, p)
	cur := &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
	s, _ := runShipper(t, testConfig(rs.addr(), FormatJSON), &l, cur)
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		l.addMany(t, 15, p)
		s.Notify()
	}
	st := s.Status()
	if st.Connected || st.LastError == "" || st.Shipped != 0 || st.Backlog != 100 {
		t.Errorf("status while down: %+v", st)
	}
	rs.start()
	l.addMany(t, 20, p)
	s.Notify()
	seqs := rs.waitFor(FormatJSON, "120 messages", func(seqs []uint64) bool { return len(seqs) >= 120 })
	if !inOrderOnce(seqs, 120) {
		t.Fatalf("not 1..120 in order: %v", tail(seqs))
	}
	waitShipped(t, s, 120)
	if got := loadCursor(t, cur); got != 120 {
		t.Errorf("cursor %d, want 120", got)
	}
}

// (c) The collector restarts while entries are being written: none is
// lost; duplicates are allowed and counted. "stop" is an orderly
// shutdown (SIGTERM); "crash" kills rsyslogd (SIGKILL) with whatever it
// had read but not yet written.
func TestRsyslogRestartMidStream(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "stop"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) { testRestartMidStream(t, crash) })
	}
}

func testRestartMidStream(t *testing.T, crash bool) {
	rs := newRsyslog(t, nil)
	rs.start()
	var l memLedger
	p := newPeer(t)
	cur := &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
	s, _ := runShipper(t, testConfig(rs.addr(), FormatDICOM), &l, cur)
	const total = 300
	written := make(chan struct{})
	go func() {
		defer close(written)
		for i := 0; i < total; i++ {
			l.addMany(t, 1, p)
			s.Notify()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rs.waitFor(FormatDICOM, "the first messages", func(seqs []uint64) bool { return len(seqs) >= 60 })
	if crash {
		rs.kill()
	} else {
		rs.stop()
	}
	time.Sleep(300 * time.Millisecond)
	rs.start()
	<-written
	seqs := rs.waitFor(FormatDICOM, "every entry", func(seqs []uint64) bool { ok, _ := allOf(seqs, total); return ok })
	_, dups := allOf(seqs, total)
	t.Logf("%d messages for %d entries: %d duplicates", len(seqs), total, dups)
	waitShipped(t, s, total)
	if got := loadCursor(t, cur); got != total {
		t.Errorf("cursor %d", got)
	}
}

// (d) A shipper restarted from its FileCursor resumes after it.
func TestRsyslogResumeFromCursor(t *testing.T) {
	rs := newRsyslog(t, nil)
	rs.start()
	var l memLedger
	p := newPeer(t)
	l.addMany(t, 50, p)
	cur := &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")}
	s, stop := runShipper(t, testConfig(rs.addr(), FormatJSON), &l, cur)
	rs.waitFor(FormatJSON, "50 messages", func(seqs []uint64) bool { return len(seqs) >= 50 })
	waitShipped(t, s, 50)
	stop()
	if got := loadCursor(t, cur); got != 50 {
		t.Fatalf("cursor after stop %d", got)
	}
	l.addMany(t, 50, p)
	reads := l.readCount()
	s2, _ := runShipper(t, testConfig(rs.addr(), FormatJSON), &l, &FileCursor{Path: cur.Path})
	seqs := rs.waitFor(FormatJSON, "100 messages", func(seqs []uint64) bool { return len(seqs) >= 100 })
	waitShipped(t, s2, 100)
	if !inOrderOnce(seqs, 100) {
		t.Fatalf("not 1..100 once each: %v", tail(seqs))
	}
	if l.readCount() == reads {
		t.Error("second shipper did not read")
	}
}

// TLS to rsyslog's gtls driver (Debian's rsyslog-gnutls), with a
// self-signed certificate the shipper is told to trust.
func TestRsyslogTLS(t *testing.T) {
	rsyslogtest.Binary(t)
	if !hasRsyslogModule("lmnsd_gtls.so") {
		t.Skip("rsyslog's gtls driver is not installed: run make deps (rsyslog-gnutls)")
	}
	tf, pool := selfSigned(t)
	rs := newRsyslog(t, tf)
	rs.start()
	var l memLedger
	l.addMany(t, 100, newPeer(t))
	cfg := testConfig(rs.addr(), FormatDICOM)
	cfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	s, _ := runShipper(t, cfg, &l, &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")})
	seqs := rs.waitFor(FormatDICOM, "100 messages over TLS", func(seqs []uint64) bool { return len(seqs) >= 100 })
	if !inOrderOnce(seqs, 100) {
		t.Fatalf("not 1..100 once each: %v", tail(seqs))
	}
	waitShipped(t, s, 100)
}

// A collector whose certificate is not trusted gets nothing, and the
// shipper says why.
func TestRsyslogTLSUntrusted(t *testing.T) {
	rsyslogtest.Binary(t)
	if !hasRsyslogModule("lmnsd_gtls.so") {
		t.Skip("rsyslog's gtls driver is not installed: run make deps (rsyslog-gnutls)")
	}
	tf, _ := selfSigned(t)
	rs := newRsyslog(t, tf)
	rs.start()
	var l memLedger
	l.addMany(t, 5, newPeer(t))
	cfg := testConfig(rs.addr(), FormatJSON)
	cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	s, _ := runShipper(t, cfg, &l, &FileCursor{Path: filepath.Join(t.TempDir(), "cursor")})
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().LastError == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := s.Status()
	if st.Connected || st.Shipped != 0 || st.LastError == "" {
		t.Errorf("status %+v", st)
	}
	t.Logf("last error: %s", st.LastError)
}

func waitShipped(t testing.TB, s *Shipper, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Status().Shipped < seq {
		if time.Now().After(deadline) {
			t.Fatalf("shipped %+v, want %d", s.Status(), seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
