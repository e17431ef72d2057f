package auditlog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

// Reader gives the audit entries after seq after, at most limit of them,
// in seq order. *consent.Ledger satisfies it.
type Reader interface {
	Entries(after uint64, limit int) ([]consent.Entry, error)
}

// headReader is the optional capability of a [Reader] to tell the seq of
// its newest entry; with it [Status] reports the backlog.
type headReader interface {
	Head() uint64
}

var (
	_ Reader     = (*consent.Ledger)(nil)
	_ headReader = (*consent.Ledger)(nil)
)

// Cursor stores the seq of the last entry delivered. Save must be durable
// when it returns (synced to disk): the shipper resumes from Load after a
// restart. [FileCursor] is one.
type Cursor interface {
	Load() (uint64, error)
	Save(seq uint64) error
}

// Config configures a [Shipper]. Zero durations and Batch take the
// defaults noted.
type Config struct {
	Addr         string      // host:port of the collector (required)
	TLS          *tls.Config // nil: plain TCP; else TLS (RFC 5425)
	Format       Format
	Source       Source
	Batch        int           // entries read and sent at a time; 100
	Retry        time.Duration // first back-off after a failure; 500ms
	MaxRetry     time.Duration // longest back-off; 30s
	DialTimeout  time.Duration // 10s
	WriteTimeout time.Duration // a batch written and acknowledged; 10s
}

// Status is a snapshot of a [Shipper].
type Status struct {
	Connected bool
	Shipped   uint64 // the cursor: seq of the last entry delivered
	Backlog   uint64 // entries not yet delivered, when the Reader can tell
	LastError string // the last failure, "" once a batch went through
	LastSent  time.Time
}

// pollInterval is how often Run looks for new entries without Notify.
const pollInterval = time.Second

// Shipper sends audit entries to a syslog collector over TCP or TLS, one
// RFC 5424 message per entry framed by octet counting (RFC 6587 3.4.1,
// RFC 5425: "LEN SP MSG"), and advances a durable cursor behind them.
//
// Delivery is at least once. An entry counts as delivered when its bytes
// were written and, on Linux, the collector's TCP stack acknowledged them
// (no unacknowledged bytes left in the socket); syslog has no
// application-level acknowledgement, so a collector that crashes with
// acknowledged bytes still unread in its buffers loses them. To cover
// that, after a connection breaks the shipper resends the last Batch
// entries before the cursor as well as everything after it. The
// collector may therefore see an entry more than once; the seq and hash
// in the structured data identify duplicates.
type Shipper struct {
	cfg  Config
	r    Reader
	cur  Cursor
	log  *slog.Logger
	wake chan struct{}

	mu sync.Mutex
	st Status
}

// NewShipper checks cfg and returns a shipper; nothing is started until
// [Shipper.Run].
func NewShipper(cfg Config, r Reader, c Cursor, log *slog.Logger) (*Shipper, error) {
	if cfg.Addr == "" {
		return nil, errors.New("new audit shipper: no collector address")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("new audit shipper: %w", err)
	}
	if cfg.Format != FormatJSON && cfg.Format != FormatDICOM {
		return nil, fmt.Errorf("new audit shipper: unknown format %d", cfg.Format)
	}
	if r == nil || c == nil {
		return nil, errors.New("new audit shipper: nil reader or cursor")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	def(&cfg.Retry, 500*time.Millisecond)
	def(&cfg.MaxRetry, 30*time.Second)
	def(&cfg.DialTimeout, 10*time.Second)
	def(&cfg.WriteTimeout, 10*time.Second)
	if cfg.MaxRetry < cfg.Retry {
		cfg.MaxRetry = cfg.Retry
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shipper{cfg: cfg, r: r, cur: c, log: log, wake: make(chan struct{}, 1)}, nil
}

// Notify tells the shipper a new entry was written, so it sends it now
// rather than at the next poll. It never blocks.
func (s *Shipper) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Status returns the shipper's state.
func (s *Shipper) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	if h, ok := s.r.(headReader); ok {
		if head := h.Head(); head > st.Shipped {
			st.Backlog = head - st.Shipped
		}
	}
	return st
}

func (s *Shipper) setErr(err error) {
	s.mu.Lock()
	s.st.LastError = err.Error()
	s.mu.Unlock()
}

// conn is one connection to the collector with the goroutine that notices
// when the collector closes it (a syslog collector never sends).
type conn struct {
	net.Conn
	raw  net.Conn // the TCP connection under TLS, for unacked
	dead chan struct{}
	done chan struct{}
}

func (c *conn) close() {
	c.Conn.Close()
	<-c.done
}

func (c *conn) broken() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// Run ships entries until ctx is done, then returns ctx's error. Failures
// of the collector or the network are logged, shown in [Status] and
// retried with exponential back-off; Run returns early only when the
// cursor cannot be loaded or saved, since it could then no longer tell
// what was delivered.
func (s *Shipper) Run(ctx context.Context) error {
	cursor, err := s.cur.Load()
	if err != nil {
		return fmt.Errorf("run audit shipper: %w", err)
	}
	s.mu.Lock()
	s.st.Shipped = cursor
	s.mu.Unlock()

	var c *conn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	backoff := time.Duration(0)
	// next is the seq after which the next batch starts; below cursor
	// when resending after a broken connection.
	next := cursor
	fail := func(err error) {
		s.setErr(err)
		s.log.Warn("audit export", "addr", s.cfg.Addr, "err", err)
		if c != nil {
			c.close()
			c = nil
			s.mu.Lock()
			s.st.Connected = false
			s.mu.Unlock()
			// The collector may have lost what it had not yet read.
			next = cursor - min(cursor, uint64(s.cfg.Batch))
		}
		backoff = min(max(2*backoff, s.cfg.Retry), s.cfg.MaxRetry)
	}
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c != nil && c.broken() {
			fail(errors.New("collector closed the connection"))
			continue
		}
		if c == nil {
			c, err = s.dial(ctx)
			if err != nil {
				fail(err)
				continue
			}
			s.mu.Lock()
			s.st.Connected = true
			s.mu.Unlock()
			s.log.Info("audit export connected", "addr", s.cfg.Addr, "from", next+1)
		}
		entries, err := s.r.Entries(next, s.cfg.Batch)
		if err != nil {
			// The ledger's trouble, not the collector's: keep the
			// connection, wait and try again.
			err = fmt.Errorf("read audit entries: %w", err)
			s.setErr(err)
			s.log.Warn("audit export", "err", err)
			backoff = min(max(2*backoff, s.cfg.Retry), s.cfg.MaxRetry)
			continue
		}
		if len(entries) == 0 {
			backoff = 0
			t := time.NewTimer(pollInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-s.wake:
				t.Stop()
			case <-c.dead:
				t.Stop()
			case <-t.C:
			}
			continue
		}
		if err := s.send(c, entries); err != nil {
			fail(err)
			continue
		}
		backoff = 0
		last := entries[len(entries)-1].Seq
		next = last
		if last > cursor {
			if err := s.cur.Save(last); err != nil {
				return fmt.Errorf("run audit shipper: %w", err)
			}
			cursor = last
		}
		s.mu.Lock()
		s.st.Shipped, s.st.LastSent, s.st.LastError = cursor, time.Now(), ""
		s.mu.Unlock()
	}
}

func (s *Shipper) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial collector: %w", err)
	}
	nc := raw
	if s.cfg.TLS != nil {
		cfg := s.cfg.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(s.cfg.Addr)
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("dial collector: tls: %w", err)
		}
		nc = tc
	}
	c := &conn{Conn: nc, raw: raw, dead: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		// Reads until the collector closes the connection or we do; a TLS
		// connection needs the reads anyway to see alerts.
		io.Copy(io.Discard, nc)
		close(c.dead)
	}()
	return c, nil
}

// send writes entries as one buffer of frames and waits until the
// collector's TCP stack acknowledged them.
func (s *Shipper) send(c *conn, entries []consent.Entry) error {
	var buf []byte
	for _, e := range entries {
		msg, err := Syslog(e, s.cfg.Source, s.cfg.Format)
		if err != nil {
			// An entry that cannot be encoded would stop the export
			// forever; it cannot happen for entries the ledger wrote.
			return fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
		}
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, ' ')
		buf = append(buf, msg...)
	}
	deadline := time.Now().Add(s.cfg.WriteTimeout)
	c.SetWriteDeadline(deadline)
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("write to collector: %w", err)
	}
	for {
		n, ok := unacked(c.raw)
		if !ok || n == 0 {
			break
		}
		if c.broken() {
			return errors.New("collector closed the connection")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("write to collector: %d bytes unacknowledged after %v", n, s.cfg.WriteTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if c.broken() {
		return errors.New("collector closed the connection")
	}
	return nil
}
