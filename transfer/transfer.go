package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// Block is one block to fetch: its key and its size in bytes, both known
// in advance (a manifest lists them). The size is what the engine
// reserves against its windows before a single byte arrives; a block that
// arrives with another size fails like bytes that do not verify.
type Block struct {
	CID  cid.Cid
	Size int
}

// Plan is one transfer: the blocks still missing and where they go.
type Plan struct {
	// Blocks lists the blocks to fetch, each once. Blocks the caller
	// already holds are left out: that is how a transfer resumes.
	Blocks []Block
	// Verify checks a block's bytes against its key (the CID check). It
	// runs on the goroutine of the source that sent the block, several at
	// once, and must be safe for concurrent use.
	Verify func(Block, []byte) error
	// Sink receives every block once, verified, one call at a time.
	Sink Sink
}

// Source is one holder of the blocks.
//
// Fetch asks the source for blocks and calls got for each one it sends,
// in any order, each at most once; got is safe for concurrent use and may
// keep the data. Fetch returns nil once it sent them all, or an error:
// its own (the source is then dropped from the transfer and its blocks
// go to the others; an error matching [ErrCorrupt], for bytes the source
// checked itself and found wrong, drops it as corrupt), or got's, after
// which it must stop. It must return
// promptly once ctx is done. The engine calls Fetch from several
// goroutines at once, one per request it keeps in flight: a request of N
// blocks maps onto one stream that carries N answers.
type Source interface {
	ID() string // names the source in progress, results and errors
	Fetch(ctx context.Context, blocks []Block, got func(Block, []byte) error) error
}

// Sink takes verified blocks. Put is called from one goroutine at a time,
// in arrival order; the engine counts a block against
// [Options.MaxInFlight] until Put returns. An error from Put ends the
// transfer: it is a local failure no other source can fix.
type Sink interface {
	Put(ctx context.Context, b Block, data []byte) error
}

// SinkFunc makes a function a [Sink].
type SinkFunc func(ctx context.Context, b Block, data []byte) error

// Put calls f.
func (f SinkFunc) Put(ctx context.Context, b Block, data []byte) error { return f(ctx, b, data) }

// Clock tells the time and makes timers: the system clock by default, a
// fake one in tests and simulations. Its shape is node/clock's, so the
// node's clock fits with a one-line adapter.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a time.Timer behind an interface.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Options tune a transfer. The zero value is usable: every field has a
// default.
type Options struct {
	// MaxInFlight bounds the bytes requested and not yet received plus
	// the bytes received and not yet taken by the sink, over all sources
	// (default 32 MiB). It is what bounds memory whatever the study's
	// size. A block larger than it is still fetched, alone.
	MaxInFlight int64
	// InitialWindow is the bytes in flight a source starts with, and the
	// least it is ever given (default 256 KiB).
	InitialWindow int64
	// MaxWindow caps one source's bytes in flight (default 16 MiB: twice
	// the bandwidth-delay product of a 1 Gbit/s link at 64 ms).
	MaxWindow int64
	// MaxRequestBytes caps one request (default 4 MiB); a request is a
	// quarter of the source's window otherwise, at least one block.
	MaxRequestBytes int64
	// MaxRequestBlocks caps the blocks in one request (default: no cap;
	// the block protocol allows 256).
	MaxRequestBlocks int
	// StallTimeout drops a source with requests outstanding that sent
	// nothing for that long (default 20 s).
	StallTimeout time.Duration
	// Progress, if set, is called at most every ProgressEvery (default
	// 500 ms) from the goroutine that called Fetch, and once more at the
	// end. It must return quickly: the transfer waits for it.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// Clock is the engine's time (default: the system clock).
	Clock Clock
	// Later, if set, brings sources found while the transfer runs (a
	// node asks the original holder for the other holders at the start
	// of a fetch, and need not wait a round trip for the answer before
	// the first blocks are asked for). The engine takes one value from
	// it, or its closing (none come), and those sources join at once,
	// sharing what is still queued, and each source there before keeps
	// its requests up to a fair share of what is left (the rest are
	// cancelled and queued again). Until then the sources it started
	// with ask for as much as they may ever hold (MaxWindow), whatever
	// their windows, so that a small plan is asked for in the first
	// round trip, and the transfer does not fail for want of sources
	// while one may come.
	Later <-chan []Source
}

// Defaults of [Options].
const (
	DefaultMaxInFlight     = 32 << 20
	DefaultInitialWindow   = 256 << 10
	DefaultMaxWindow       = 16 << 20
	DefaultMaxRequestBytes = 4 << 20
	DefaultStallTimeout    = 20 * time.Second
	DefaultProgressEvery   = 500 * time.Millisecond
)

func (o Options) withDefaults() Options {
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.InitialWindow <= 0 {
		o.InitialWindow = DefaultInitialWindow
	}
	if o.MaxWindow <= 0 {
		o.MaxWindow = DefaultMaxWindow
	}
	o.MaxWindow = max(o.MaxWindow, o.InitialWindow)
	o.MaxRequestBlocks = max(o.MaxRequestBlocks, 0)
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Clock == nil {
		o.Clock = SystemClock()
	}
	return o
}

// State is a source's standing in a transfer.
type State int

// A source is active until it fails; a failed source gets no further
// requests in this transfer.
const (
	StateActive  State = iota
	StateFailed        // Fetch returned an error, or ended a request with blocks unsent
	StateStalled       // requests outstanding and nothing received for StallTimeout
	StateCorrupt       // sent bytes that failed Verify, or a block it was not asked for
)

func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateFailed:
		return "failed"
	case StateStalled:
		return "stalled"
	case StateCorrupt:
		return "corrupt"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Errors a source is dropped with, and the error of a transfer no source
// could finish. Match them with [errors.Is].
var (
	// ErrCorrupt: the source sent bytes that are not the block asked for.
	// The node audits such a peer.
	ErrCorrupt = errors.New("corrupt block")
	// ErrStalled: the source sent nothing for Options.StallTimeout.
	ErrStalled = errors.New("source stalled")
	// ErrAllFailed: every source was dropped before the plan was done.
	// The error is a [*SourcesError]; what reached the sink stays there.
	ErrAllFailed = errors.New("every source failed")
)

// SourcesError is the error of a transfer that every source failed. Its
// sources carry why each was dropped.
type SourcesError struct {
	Missing int // blocks not delivered
	Sources []SourceResult
}

func (e *SourcesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v (%d blocks missing)", ErrAllFailed, e.Missing)
	for i, s := range e.Sources {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", s.ID, s.Err)
	}
	return b.String()
}

// Unwrap gives ErrAllFailed and every source's error.
func (e *SourcesError) Unwrap() []error {
	errs := []error{ErrAllFailed}
	for _, s := range e.Sources {
		if s.Err != nil {
			errs = append(errs, s.Err)
		}
	}
	return errs
}

// Progress is a transfer's state, as the CLI's bar and the web app show
// it. Done counts blocks the sink took.
type Progress struct {
	Time        time.Time
	Elapsed     time.Duration
	BlocksDone  int
	BlocksTotal int
	BytesDone   int64
	BytesTotal  int64
	Rate        float64       // bytes per second, smoothed
	ETA         time.Duration // 0 when unknown
	Sources     []SourceProgress
}

// SourceProgress is one source's part of a [Progress].
type SourceProgress struct {
	Source Source
	ID     string
	State  State
	Err    error   // why it was dropped
	Bytes  int64   // verified bytes it delivered first
	Rate   float64 // bytes per second, as measured for its window
	RTT    time.Duration
	Window int64 // bytes it may have in flight
}

// Result is what a transfer did.
type Result struct {
	Blocks       int   // blocks the sink took
	Bytes        int64 // their bytes
	Duplicates   int64 // bytes received twice (endgame) and thrown away
	Duration     time.Duration
	PeakInFlight int64 // the most bytes counted against MaxInFlight at once
	Sources      []SourceResult
	// Missing lists the plan's blocks the sink did not take: a re-run
	// with them as its plan resumes the transfer.
	Missing []Block
}

// SourceResult is one source's part in a transfer.
type SourceResult struct {
	Source     Source
	ID         string
	State      State
	Err        error // why it was dropped; nil for an active source
	Blocks     int   // blocks it delivered first
	Bytes      int64
	Share      float64 // of the bytes the sink took
	Duplicates int64   // its bytes that arrived second
	Rate       float64 // its last measured rate, bytes per second
	RTT        time.Duration
}

// Dropped lists the sources dropped from the transfer, with why.
func (r Result) Dropped() []SourceResult {
	var out []SourceResult
	for _, s := range r.Sources {
		if s.State != StateActive {
			out = append(out, s)
		}
	}
	return out
}
