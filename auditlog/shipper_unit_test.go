package auditlog

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

func TestNewShipperConfig(t *testing.T) {
	var l memLedger
	c := &FileCursor{Path: filepath.Join(t.TempDir(), "c")}
	for name, cfg := range map[string]Config{
		"no addr":        {},
		"no port":        {Addr: "collector"},
		"unknown format": {Addr: "127.0.0.1:6514", Format: Format(7)},
	} {
		if _, err := NewShipper(cfg, &l, c, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewShipper(Config{Addr: "127.0.0.1:6514"}, nil, c, nil); err == nil {
		t.Error("nil reader accepted")
	}
	s, err := NewShipper(Config{Addr: "127.0.0.1:6514", Retry: time.Minute}, &l, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Batch != 100 || s.cfg.MaxRetry != time.Minute || s.cfg.WriteTimeout == 0 || s.cfg.DialTimeout == 0 {
		t.Errorf("defaults %+v", s.cfg)
	}
	for i := 0; i < 3; i++ {
		s.Notify() // never blocks
	}
}

type failingCursor struct{ load, save error }

func (c failingCursor) Load() (uint64, error) { return 0, c.load }
func (c failingCursor) Save(uint64) error     { return c.save }

// Run stops when it cannot know or record what was delivered, and only
// then.
func TestRunCursorErrors(t *testing.T) {
	var l memLedger
	l.addMany(t, 3, newPeer(t))
	boom := errors.New("boom")

	s, _ := NewShipper(Config{Addr: "127.0.0.1:1"}, &l, failingCursor{load: boom}, nil)
	if err := s.Run(context.Background()); !errors.Is(err, boom) {
		t.Errorf("load error: Run = %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	s, _ = NewShipper(Config{Addr: ln.Addr().String()}, &l, failingCursor{save: boom}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, boom) {
		t.Errorf("save error: Run = %v", err)
	}
}

// limitReader records the largest batch asked for.
type limitReader struct {
	memLedger
	lmu      sync.Mutex
	maxLimit int
}

func (r *limitReader) Entries(after uint64, limit int) ([]consent.Entry, error) {
	r.lmu.Lock()
	r.maxLimit = max(r.maxLimit, limit)
	r.lmu.Unlock()
	return r.memLedger.Entries(after, limit)
}

func (r *limitReader) largest() int {
	r.lmu.Lock()
	defer r.lmu.Unlock()
	return r.maxLimit
}

// The collector unreachable: Run keeps retrying, never returns before
// ctx is done, and reports the error.
func TestRunCollectorDown(t *testing.T) {
	var r memLedger
	r.addMany(t, 10, newPeer(t))
	cfg := testConfig(net.JoinHostPort("127.0.0.1", "1"), FormatJSON)
	s, err := NewShipper(cfg, &r, &FileCursor{Path: filepath.Join(t.TempDir(), "c")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v", err)
	}
	if st := s.Status(); st.Connected || st.LastError == "" || st.Backlog != 10 {
		t.Errorf("status %+v", st)
	}
}
