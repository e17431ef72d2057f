package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Close in the middle of everything (a rate-limited upload, a running
// fetch, a pending outbox item) returns promptly and leaves no goroutine.
func TestCloseStopsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 8 << 10 }})
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	link(t, a, c)
	study, _ := importCT(t, a, 1, 8)
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first blocks", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.BytesDone > 0
	})
	c.stop()
	grant(t, a, c, study) // queued for a stopped partner
	if s, _ := b.FetchStatus(st.ID); s.State == FetchDone {
		t.Fatal("the fetch finished before the nodes were closed; slow the holder down")
	}

	for _, n := range []*tnode{b, a} {
		start := time.Now()
		n.stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closing %s took %s", n.name, d)
		}
	}
	goleak.VerifyNone(t, before)
}

// Run serves until its context ends and leaves HOME/run/api.json for the
// CLI only while it serves.
func TestRunWritesRunInfo(t *testing.T) {
	home := initHome(t)
	if _, err := ReadRunInfo(home); err == nil || !strings.Contains(err.Error(), "no node is serving") {
		t.Fatalf("ReadRunInfo before serving: %v", err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	n, err := Open(home, cfg, Options{Logger: testLogger(t, "Keys")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var ri RunInfo
	waitFor(t, 5*time.Second, "run/api.json", func() bool {
		ri, err = ReadRunInfo(home)
		return err == nil
	})
	if ri.API != "http://"+n.HTTPAddr() || ri.PID != os.Getpid() || ri.PeerID != n.ID() || len(ri.P2P) == 0 || ri.Name != "Keys" {
		t.Errorf("run info: %+v", ri)
	}
	if fi, err := os.Stat(filepath.Join(home, runDir, apiInfoFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("run file: %v, %v", fi.Mode(), err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := ReadRunInfo(home); err == nil {
		t.Error("run/api.json left behind after Run returned")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

// The CLI would send the admin token to the URL run/api.json names: the
// file is refused when its home, run/ or itself is writable by others.
func TestReadRunInfoRefusesWritableFiles(t *testing.T) {
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: "Alpha"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, runDir, apiInfoFile)
	if err := os.WriteFile(path, []byte(`{"api":"http://127.0.0.1:1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRunInfo(home); err != nil {
		t.Fatalf("private run info: %v", err)
	}
	for _, p := range []string{path, filepath.Join(home, runDir), home} {
		fi, _ := os.Stat(p)
		os.Chmod(p, fi.Mode().Perm()|0o002)
		if _, err := ReadRunInfo(home); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("%s writable by others: %v", p, err)
		}
		os.Chmod(p, fi.Mode().Perm())
	}
}

// serve warns when the local API listens beyond this machine (the check
// itself: tests bind loopback only).
func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7480": true, "127.9.9.9:1": true, "[::1]:7480": true,
		"0.0.0.0:7480": false, "[::]:7480": false, "10.0.0.5:7480": false, "nonsense": false,
	} {
		if got := loopbackOnly(addr); got != want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", addr, got, want)
		}
	}
}
