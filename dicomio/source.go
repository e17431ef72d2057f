package dicomio

import (
	"iter"
	"math"
)

// source is the input a walker reads, addressed by absolute offset: all of
// it in memory ([Parse]), or a window that slides along a stream
// ([ParseStream]). The walker is the same either way; only where the bytes
// come from differs.
type source struct {
	buf  []byte // input bytes [base, base+len(buf))
	base int
	eof  bool // the input ends at base+len(buf) (or reading had to stop; the stream knows why)
	// lastNZ is the offset of the last non-zero byte read so far (-1 for
	// none): the zero padding that may end a dataset is recognised by it,
	// because scanning ahead at every suspicious element would make a
	// hostile input quadratic.
	lastNZ int
	// The bytes [zeroAt, base) are no longer in buf although a reader
	// still needs them: they were all zero, and read as zeros. A long run
	// of zeros is not worth holding to be walked 8 bytes at a time.
	zeroAt int
	st     *stream // nil when buf is the whole input
}

// memSource is a source over an input held whole.
func memSource(data []byte) *source {
	z := len(data)
	for z > 0 && data[z-1] == 0 {
		z--
	}
	return &source{buf: data, eof: true, lastNZ: z - 1}
}

func (s *source) end() int { return s.base + len(s.buf) }

// bytes returns the n bytes at p, which a reader has made available. The
// slice is valid until the window next moves (the next need or more).
func (s *source) bytes(p, n int) []byte {
	if p >= s.base {
		return s.buf[p-s.base:][:n]
	}
	return s.zeroPadded(p, n)
}

var zeroBlock [16]byte

func (s *source) zeroPadded(p, n int) []byte {
	if p < s.zeroAt {
		panic("dicomio: read below the window") // a bug; recovered as ErrCodeInternal
	}
	if p+n <= s.base && n <= len(zeroBlock) {
		return zeroBlock[:n:n]
	}
	b := make([]byte, n)
	if p+n > s.base {
		copy(b[s.base-p:], s.buf[:p+n-s.base])
	}
	return b
}

// stream supplies a source's window from a feeder.
type stream struct {
	feed feeder
	back []byte // the window's storage, grown up to max
	max  int    // Limits.Buffer
	// The window keeps the bytes from hold on whatever its readers need:
	// they have not been written out yet. math.MaxInt when nothing is held.
	hold int
	ing  *ingest // told when the window overflows
}

// feeder produces a stream's bytes: the input, or the inflated dataset.
type feeder interface {
	// feed reads the next bytes into p. It reports eof at the end of its
	// input and when reading must stop for another reason, which it keeps.
	feed(p []byte) (n int, eof bool)
}

const (
	minWindow = 64 << 10 // first window size; the window grows only when it must
	minRead   = 4 << 10  // smaller free space is made bigger before reading
)

// streamSource is a source over what feed produces, holding at most max bytes.
func streamSource(feed feeder, max int, ing *ingest) *source {
	return &source{lastNZ: -1, st: &stream{feed: feed, max: max, hold: math.MaxInt, ing: ing}}
}

// drop forgets the bytes before keep (down to zeroAt for zeros already
// dropped).
func (s *source) drop(keep int) {
	if keep <= s.base {
		s.zeroAt = max(s.zeroAt, keep)
		return
	}
	k := min(keep, s.end()) - s.base
	s.buf = s.buf[k:]
	s.base += k
	s.zeroAt = s.base
}

// more reads more of the stream into the window, keeping the bytes from
// keep on (and from the stream's hold on). It reports full when the window
// holds Limits.Buffer bytes that are all still needed; then nothing was
// read.
func (s *source) more(keep int) (full bool) {
	st := s.st
	if s.eof || st == nil {
		return false
	}
	s.drop(min(keep, st.hold))
	if cap(s.buf)-len(s.buf) < minRead {
		used := cap(st.back) - cap(s.buf) // bytes of back before buf
		switch {
		case len(s.buf) == 0 && cap(st.back) > 0:
			s.buf = st.back[:0]
		case used > 0 && cap(st.back)-len(s.buf) >= minRead:
			s.buf = st.back[:copy(st.back, s.buf)]
		case len(st.back) < st.max:
			nb := make([]byte, min(max(2*len(st.back), minWindow, len(s.buf)+minRead), st.max))
			s.buf = nb[:copy(nb, s.buf)]
			st.back = nb
		case used > 0:
			s.buf = st.back[:copy(st.back, s.buf)]
		}
	}
	if len(s.buf) == cap(s.buf) {
		if s.lastNZ >= s.base || st.hold < s.end() {
			return true
		}
		// Every byte held is zero: they read as zeros from now on.
		s.base = s.end()
		s.buf = st.back[:0]
	}
	at := s.end()
	n, eof := st.feed.feed(s.buf[len(s.buf):cap(s.buf)])
	s.buf = s.buf[:len(s.buf)+n]
	for i := n - 1; i >= 0; i-- {
		if s.buf[len(s.buf)-n+i] != 0 {
			s.lastNZ = at + i
			break
		}
	}
	s.eof = eof
	return false
}

// drain reads the rest of the stream, keeping nothing.
func (s *source) drain() {
	for !s.eof && s.st != nil {
		s.more(math.MaxInt)
	}
}

// stop ends the stream for every reader; the caller has recorded why.
func (s *source) stop() { s.eof = true }

// cursor reads a source for one consumer. When several walkers share a
// stream each runs as a coroutine (see runTasks) and yields whenever it
// needs input that has not arrived; alone, a consumer reads the stream
// itself.
type cursor struct {
	src     *source
	yield   func(struct{}) bool // nil: read the stream directly
	keep    int                 // while suspended: the offset from which it still needs the input
	want    int                 // while suspended: the window end it waits for
	stopped bool                // the scheduler stopped it: it must unwind
}

// need makes the input up to p readable, keeping it from keep on, and
// reports whether the input extends that far.
func (c *cursor) need(keep, p int) bool {
	return p <= c.src.end() || c.needMore(keep, p)
}

func (c *cursor) needMore(keep, p int) bool {
	for p > c.src.end() {
		if c.src.eof || !c.more(keep) {
			return false
		}
	}
	return true
}

// more has more input read, keeping it from keep on. It reports false when
// the consumer must stop reading.
func (c *cursor) more(keep int) bool {
	s := c.src
	if c.yield == nil {
		if s.more(keep) {
			s.st.ing.overflowed(s)
		}
		return true
	}
	if c.stopped {
		return false
	}
	c.keep, c.want = keep, s.end()+1
	if !c.yield(struct{}{}) {
		c.stopped = true
		return false
	}
	return true
}

// zeroTail reports whether every byte from p to the end of the input is
// zero (trailing padding). A stream is read until a non-zero byte or its
// end shows which.
func (c *cursor) zeroTail(p int) bool {
	for c.src.lastNZ < p && !c.src.eof {
		if !c.more(p) {
			break
		}
	}
	return c.src.lastNZ < p
}

// capture returns the value of l bytes at p, or false when the input ends
// before it does. In memory the value is a slice of the input. A stream
// holds at most maxIndexValueLen bytes of a value (fill refuses longer
// ones anyway) and sums up a longer one as it passes (see value), unless
// the walker must walk it too (hold), when the window holds it whole.
func (c *cursor) capture(p, l int, hold bool) (value, bool) {
	s := c.src
	if s.st == nil || l <= maxIndexValueLen || hold {
		if !c.need(p, p+l) {
			return value{}, false
		}
		b := s.bytes(p, l)
		if s.st == nil {
			return value{b: b, n: l, tn: -1}, true
		}
		if l <= maxIndexValueLen {
			return value{b: append([]byte(nil), b...), n: l, tn: -1}, true
		}
		var sum summer
		sum.add(b)
		return sum.value(), true
	}
	var sum summer
	for q, end := p, p+l; q < end; {
		if !c.need(q, q+1) {
			return value{}, false
		}
		n := min(end, s.end()) - q
		sum.add(s.bytes(q, n))
		q += n
	}
	return sum.value(), true
}

// value is a captured attribute value. In memory it is a slice of the
// input; a stream keeps a copy of a value up to maxIndexValueLen bytes,
// and of a longer one what checkRequired, fill and parseMeta look at:
// its length, and its trimmed form (trimPadding(v, true)), cut.
type value struct {
	b  []byte // the value, or its trimmed form cut to maxIndexValueLen+1 bytes
	n  int    // length of the value
	tn int    // length of the trimmed form when b is that form, else -1
}

// trimmed returns trimPadding(v, true) (cut, see value) and its full length.
func (v value) trimmed() ([]byte, int) {
	if v.tn < 0 {
		t := trimPadding(v.b, true)
		return t, len(t)
	}
	return v.b, v.tn
}

// summer computes a long value's summary from its pieces.
type summer struct {
	n, lead int    // bytes seen; leading spaces
	last    int    // offset of the last byte other than padding, plus one (0: none)
	head    []byte // the value after its leading spaces, cut to maxIndexValueLen+1 bytes
}

func (s *summer) add(b []byte) {
	if s.n == s.lead {
		i := 0
		for i < len(b) && b[i] == ' ' {
			i++
		}
		s.lead += i
		s.n += i
		b = b[i:]
	}
	if len(b) == 0 {
		return
	}
	if room := maxIndexValueLen + 1 - len(s.head); room > 0 {
		s.head = append(s.head, b[:min(room, len(b))]...)
	}
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != ' ' && b[i] != 0 {
			s.last = s.n + i + 1
			break
		}
	}
	s.n += len(b)
}

func (s *summer) value() value {
	if s.last == 0 {
		return value{n: s.n, tn: 0}
	}
	tn := s.last - s.lead
	return value{b: s.head[:min(tn, len(s.head))], n: s.n, tn: tn}
}

// task is one walker running as a coroutine beside others on one stream.
type task struct {
	w       *walker
	enc     layout // the encoding it walks
	run     func() *Error
	err     *Error
	done    bool
	dropped bool // stopped because its result no longer matters
	started bool
	next    func() (struct{}, bool)
	stop    func()
}

// drop stops a task whose result no longer matters.
func (t *task) drop() {
	if !t.done {
		t.stop()
		t.done, t.dropped = true, true
	}
}

// runTasks runs walkers that share the stream s in step, until all are
// done: each goes as far as the input read so far lets it, then the
// window moves on, keeping what the walker furthest behind still needs.
// round is called after each pass over the walkers; full, when the
// window is full, and reports whether it made room (else the window
// overflows).
//
// Coroutines rather than one pass per walker because a stream is read
// once, and the walkers' results only make sense together (the encoding of
// a bare dataset is the one of three that walks cleanly).
func runTasks(s *source, tasks []*task, round func(), full func() bool) {
	for _, t := range tasks {
		t.next, t.stop = iter.Pull(func(yield func(struct{}) bool) {
			t.w.yield = yield
			t.err = t.run()
		})
	}
	defer func() {
		for _, t := range tasks {
			t.stop()
		}
	}()
	for {
		resumed, live := false, false
		for _, t := range tasks {
			if t.done || t.started && t.w.want > s.end() && !s.eof {
				continue
			}
			t.started, resumed = true, true
			if _, ok := t.next(); !ok {
				t.done = true
			}
		}
		if round != nil {
			round()
		}
		if resumed {
			continue
		}
		keep := math.MaxInt
		for _, t := range tasks {
			if !t.done {
				live = true
				keep = min(keep, t.w.keep)
			}
		}
		if !live {
			return
		}
		if s.more(keep) && (full == nil || !full() || s.more(keep)) {
			s.st.ing.overflowed(s)
		}
	}
}
