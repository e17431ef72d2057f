package dicomio

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// ParseStream reads one instance from r (a Part-10 file or a bare dataset,
// like [Parse]), validates it with the same rules and limits as Parse, and
// writes the normalized Part-10 bytes to w as it goes. Memory is bounded
// by lim.Buffer (plus small per-element state), whatever the instance
// size. The returned Instance has Data == nil and every other field
// (Digest, Raw, UIDs, patient/study/series attributes, NumberOfFrames,
// Warnings, Storable()) exactly as Parse would set them for the same
// input. On error nothing useful has been written (the caller discards
// w's output); every error is an *[Error] with the same Code Parse would
// give.
//
// Values that need no inspecting (pixel data, other large values,
// encapsulated fragments) pass through without being held. What cannot be
// decided within lim.Buffer bytes is refused with ErrCodeTooLarge where
// Parse, holding everything, could go on:
//   - a bare dataset gets its file meta group in front, which depends on
//     its encoding (the one of three that walks cleanly) and on its SOP
//     Class and Instance UIDs: the dataset is held until those are
//     settled. When lim.Buffer fills first (a wrong reading of a dataset
//     with large values can stay undecided to the end), the meta group is
//     written for the one reading that has found valid SOP Class and
//     Instance UIDs; none or several such readings, or another reading
//     that turns out to be the answer, give ErrCodeTooLarge;
//   - a deflated dataset with a zlib header that fails to inflate as raw
//     deflate is tried again as zlib (as Parse does) only if the failure
//     comes within its first 64 KiB, which are held for that; a zlib
//     header read as raw deflate fails within a few bytes unless crafted.
//
// As [Read] does, ParseStream puts a failing reader (ErrCodeIO) and an
// input of more than lim.MaxSize bytes (ErrCodeTooLarge) before anything
// wrong in the input, so after finding a fault it reads on to the end of
// the input (without holding or writing it) to see which error is the
// answer. An input too large is refused as soon as lim.MaxSize+1 bytes
// have arrived. A failing w gives ErrCodeIO too.
func ParseStream(r io.Reader, w io.Writer, lim Limits) (*Instance, error) {
	inst, err := parseStream(r, w, lim)
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// ingest is one ParseStream: the input read once through a window, and
// the normalized instance written and hashed as the window moves on.
type ingest struct {
	lim Limits
	src *source // the window over the input; ingest feeds it

	r    io.Reader
	n    int64  // input bytes read
	done bool   // no more input will be read
	err  *Error // why the input had to stop: the reader or the writer failed, or MaxSize was exceeded

	w       io.Writer
	h       hash.Hash
	written int64
	writing bool // input bytes are written as they are read
	off     bool // the parse failed: nothing more is written

	overflow *Error // a window had to hold more than lim.Buffer bytes

	// With an AttributeSink, output waits in held until the walk that
	// decides the instance (fireFrom) has read its index attributes.
	sink     AttributeSink
	fired    bool
	held     []byte
	fireFrom *walker
	fireTS   string
	fireBig  bool
	fireRaw  bool
	unfit    *walker // a deciding walk whose attributes cannot be filed
}

// AttributeSink is an optional interface of [ParseStream]'s writer, for a
// writer whose handling of the instance depends on what it is (an archive
// encrypts it to its study's key, or only counts a copy it holds
// already). ParseStream then holds the output until the index attributes
// are read (at the first top-level element past them, or at the end of a
// smaller dataset, or of one whose elements are out of tag order), calls
// Attributes once with an Instance whose UIDs,
// transfer syntax and index attributes are filled (Digest and Warnings
// are not, yet), and only then writes. An error from Attributes stops the
// parse with that error (an [*Error] as it is, any other as ErrCodeIO).
// Output held waiting is bounded by 2 × lim.Buffer; an instance whose
// index attributes do not come within it is refused with ErrCodeTooLarge.
// An instance that Parse would accept but that lacks the UIDs an archive
// needs (see [Instance.Storable]) is not given to Attributes, and nothing
// is written.
type AttributeSink interface {
	io.Writer
	Attributes(inst *Instance) error
}

// decider names the walk whose attributes an AttributeSink receives.
func (ing *ingest) decider(w *walker, tsUID string, big, raw bool) {
	if ing.sink == nil {
		return
	}
	ing.fireFrom, ing.fireTS, ing.fireBig, ing.fireRaw = w, tsUID, big, raw
	w.onAttrs = ing.fire
	if w.attrsDone {
		ing.fire(w)
	}
}

// fire gives the AttributeSink the deciding walk's attributes and writes
// the output held for it.
func (ing *ingest) fire(w *walker) {
	if ing.sink == nil || ing.fired || w != ing.fireFrom || ing.off {
		return
	}
	ing.fired = true
	cp := *w
	cp.warn = &warnings{} // warnings are the final walk's to give
	inst := &Instance{TransferSyntaxUID: ing.fireTS, Raw: ing.fireRaw}
	if cp.checkRequired() != nil || cp.fill(inst, ing.fireBig) != nil {
		// The parse fails, or the instance cannot be filed: nothing for
		// the sink from this walk (a later one, inflating the dataset
		// again as zlib, may still decide).
		ing.fired, ing.unfit = false, w
		return
	}
	if err := ing.sink.Attributes(inst); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Code: ErrCodeIO, Offset: -1, err: err, Msg: "the writer refused the instance"}
		}
		ing.off, ing.held = true, nil
		ing.fail(e)
		return
	}
	held := ing.held
	ing.held = nil
	ing.emit(held, 0)
}

func parseStream(r io.Reader, w io.Writer, lim Limits) (inst *Instance, perr *Error) {
	lim = lim.withDefaults()
	ing := &ingest{lim: lim, r: r, w: w, h: sha256.New()}
	ing.sink, _ = w.(AttributeSink)
	ing.src = streamSource(ing, lim.Buffer, ing)
	// Nothing is written before it is known what goes in front of it.
	ing.src.st.hold = 0
	defer func() {
		if r := recover(); r != nil {
			inst, perr = nil, recovered(r)
		}
	}()
	inst, perr = ing.parse()
	if perr = ing.settle(perr); perr != nil {
		return nil, perr
	}
	if inst == nil {
		return nil, &Error{Code: ErrCodeInternal, Offset: -1, Msg: "internal error: stream parse ended without a result"}
	}
	return inst, nil
}

// failed reports an error that ends the parse whatever the input holds;
// settle returns it.
func (ing *ingest) failed() bool { return ing.err != nil || ing.overflow != nil }

// settle decides the outcome. Read puts a failing reader and an input over
// MaxSize before anything wrong in the input (it reads it all first, and
// Parse checks the size first), so a parse error has the rest of the input
// read, not written, to see whether one of those is the answer.
func (ing *ingest) settle(perr *Error) *Error {
	if perr != nil || ing.failed() {
		ing.off = true
		ing.drain()
	}
	switch {
	case ing.err != nil:
		return ing.err
	case ing.overflow != nil:
		return ing.overflow
	}
	return perr
}

func (ing *ingest) fail(e *Error) {
	if ing.err == nil {
		ing.err = e
	}
	ing.done = true
}

// feed reads the input for the window (ingest is its feeder), writing it
// out once that has begun.
func (ing *ingest) feed(p []byte) (int, bool) {
	if ing.done {
		return 0, true
	}
	limit := min(ing.lim.MaxSize, math.MaxInt64-1) + 1 // one byte more than allowed shows there is more
	p = p[:min(int64(len(p)), limit-ing.n)]
	for empty := 0; ; empty++ {
		n, err := ing.r.Read(p)
		if n > 0 {
			if ing.writing {
				ing.write(p[:n])
			}
			ing.n += int64(n)
		}
		switch {
		case ing.n > ing.lim.MaxSize:
			ing.fail(tooLarge(ing.lim))
		case err == io.EOF:
			ing.done = true
		case err != nil:
			ing.fail(readError(err, ing.n))
		case n == 0 && empty < 100:
			continue
		case n == 0:
			ing.fail(readError(io.ErrNoProgress, ing.n))
		}
		return n, ing.done
	}
}

// drain reads the rest of the input, holding and writing none of it.
func (ing *ingest) drain() {
	var scratch []byte
	for !ing.done {
		if scratch == nil {
			scratch = make([]byte, 32<<10)
		}
		ing.feed(scratch)
	}
}

func (ing *ingest) write(b []byte) {
	if ing.off || len(b) == 0 {
		return
	}
	ing.h.Write(b)
	if ing.sink != nil && !ing.fired {
		if len(ing.held)+len(b) > 2*ing.lim.Buffer {
			ing.off, ing.held = true, nil
			if ing.unfit != nil && ing.unfit == ing.fireFrom {
				return // nothing will be given to the sink: stop holding, and parse on
			}
			ing.fail(newError(ErrCodeTooLarge, 0, ing.written, "the index attributes (up to Bits Allocated (0028,0100)) are not within the first %d bytes of the instance (twice the limit Buffer)", 2*ing.lim.Buffer))
			return
		}
		ing.held = append(ing.held, b...)
		ing.written += int64(len(b))
		return
	}
	ing.emit(b, ing.written)
	ing.written += int64(len(b))
}

// emit writes b, hashed when it was written or held; at is its offset in
// the output.
func (ing *ingest) emit(b []byte, at int64) {
	if len(b) == 0 || ing.off {
		return
	}
	if _, err := ing.w.Write(b); err != nil {
		ing.off = true
		ing.fail(&Error{Code: ErrCodeIO, Offset: at, err: err,
			Msg: "writing the output failed after " + strconv.FormatInt(at, 10) + " bytes"})
	}
}

// commit writes what goes in front of the input and the input read so
// far (all of it is still in the window), its preamble zeroed if asked;
// from then on the input is written as it is read.
func (ing *ingest) commit(prefix []byte, zeroPreamble bool) {
	s := ing.src
	held := s.bytes(0, s.end())
	ing.write(prefix)
	if zeroPreamble {
		ing.write(make([]byte, 128))
		held = held[128:]
	}
	ing.write(held)
	ing.writing = true
	s.st.hold = math.MaxInt
}

// overflowed stops a window that would have to hold more than lim.Buffer
// bytes; it is the source's more that found it full.
func (ing *ingest) overflowed(s *source) {
	if ing.overflow == nil {
		switch {
		case s == ing.src && s.st.hold == 0:
			ing.overflow = newError(ErrCodeTooLarge, 0, int64(s.end()),
				"bare dataset: the encoding and the SOP Class and Instance UIDs that the file meta group written in front of it needs are not settled within its first %d bytes (limit Buffer)",
				ing.lim.Buffer)
		case s == ing.src:
			ing.overflow = newError(ErrCodeTooLarge, 0, int64(s.base), "more than %d bytes from offset %d would have to be held at once (limit Buffer)",
				ing.lim.Buffer, s.base)
		default:
			ing.overflow = newError(ErrCodeTooLarge, 0, -1, "more than %d bytes from offset %d of the inflated dataset would have to be held at once (limit Buffer)",
				ing.lim.Buffer, s.base)
		}
	}
	s.stop()
}

func (ing *ingest) parse() (*Instance, *Error) {
	s := ing.src
	(&cursor{src: s}).need(0, 132)
	if ing.failed() {
		return nil, nil
	}
	if s.end() == 0 {
		return nil, newError(ErrCodeTruncated, 0, 0, "input is empty")
	}
	warn := &warnings{}
	switch sniff(s.bytes(0, min(132, s.end()))) {
	case shapePart10:
		ing.commit(nil, true)
		return ing.part10(132, warn)
	case shapeNoPreamble:
		warn.add(noPreambleWarning)
		ing.commit(make([]byte, 128), false)
		return ing.part10(4, warn)
	case shapeMetaOnly:
		warn.add(metaOnlyWarning)
		ing.commit(append(make([]byte, 128), "DICM"...), false)
		return ing.part10(0, warn)
	}
	return ing.raw(warn)
}

// part10 is parsePart10 for a stream.
func (ing *ingest) part10(metaStart int, warn *warnings) (*Instance, *Error) {
	meta, err := parseMeta(&cursor{src: ing.src}, metaStart, ing.lim, warn)
	if ing.failed() {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ts, err := metaTS(meta, metaStart)
	if err != nil {
		return nil, err
	}
	var w *walker
	if ts.deflated {
		w, err = ing.inflated(meta, ts, warn)
	} else {
		w, err = ing.walkDeclared(meta, ts, warn)
	}
	if ing.failed() {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	inst, err := part10Instance(w, meta, ts, warn)
	if err != nil {
		return nil, err
	}
	return ing.finish(inst, warn)
}

// finish reads (and writes) what is left of the input, which only a
// deflated dataset leaves (its deflate stream may end before the input).
func (ing *ingest) finish(inst *Instance, warn *warnings) (*Instance, *Error) {
	ing.src.drain()
	if ing.failed() {
		return nil, nil
	}
	ing.h.Sum(inst.Digest[:0])
	inst.Warnings = warn.result()
	return inst, nil
}

// walkDeclared walks a dataset in the encoding its transfer syntax
// declares and, beside it, in the two others: if the declared one fails,
// parsePart10's mismatch needs to know whether another walks cleanly, and
// the input cannot be read again. The others are dropped as soon as the
// declared one succeeds.
func (ing *ingest) walkDeclared(meta metaInfo, ts tsInfo, warn *warnings) (*walker, *Error) {
	s := ing.src
	decl := newWalker(s, ing.lim, warn)
	ing.decider(decl, meta.ts, ts.enc.big, false)
	tasks := []*task{{w: decl, run: func() *Error { return decl.walk(meta.end, ts.enc) }}}
	for _, alt := range rawOrder {
		if alt == ts.enc {
			continue
		}
		aw := newWalker(s, ing.lim, &warnings{})
		tasks = append(tasks, &task{w: aw, enc: alt, run: func() *Error { return aw.walk(meta.end, alt) }})
	}
	runTasks(s, tasks, func() {
		if tasks[0].done && tasks[0].err == nil {
			for _, t := range tasks[1:] {
				t.drop()
			}
		}
	}, nil)
	werr := tasks[0].err
	if werr == nil {
		return decl, nil
	}
	for _, t := range tasks[1:] {
		if t.err == nil && !t.dropped && t.w.checkRequired() == nil {
			return nil, mismatch(werr, ts.enc, t.enc, meta.ts)
		}
	}
	return nil, werr
}

// raw is parseRaw for a stream: the three candidate encodings are walked
// side by side, and the dataset is held until the file meta group that
// goes in front of it is known.
func (ing *ingest) raw(warn *warnings) (*Instance, *Error) {
	s := ing.src
	tasks := make([]*task, len(rawOrder))
	for i, enc := range rawOrder {
		w := newWalker(s, ing.lim, &warnings{})
		tasks[i] = &task{w: w, enc: enc, run: func() *Error { return w.walk(0, enc) }}
	}
	var meta []byte
	commit := func(t *task) {
		uidOf := func(i int) string { u, _ := t.w.attrs[i].trimmed(); return string(u) }
		meta = encodeMeta(uidOf(aSOPClassUID), uidOf(aSOPInstanceUID), rawTS[t.enc])
		ing.commitRaw(meta)
		ing.decider(t.w, rawTS[t.enc], t.enc.big, true)
	}
	runTasks(s, tasks, func() {
		if meta != nil {
			return
		}
		// Parse can only succeed with the one walk still going (or
		// finished cleanly), and then its meta group is made of its first
		// SOP Class and Instance UIDs.
		var cand *task
		for _, t := range tasks {
			if t.done && t.err != nil {
				continue
			}
			if cand != nil {
				return
			}
			cand = t
		}
		if cand != nil && cand.w.seen[aSOPClassUID] && cand.w.seen[aSOPInstanceUID] {
			commit(cand)
		}
	}, func() bool {
		// The window is full of dataset not yet written. A wrong reading
		// of a dataset with large values can stay undecided until the end
		// of the input (a length read from the wrong bytes points far
		// ahead), so the meta group is written for the one reading that
		// has found valid SOP Class and Instance UIDs so far; if another
		// reading turns out to be the answer, the result is an error.
		if meta != nil {
			return false
		}
		var cand *task
		for _, t := range tasks {
			if t.done && t.err != nil || !t.w.uidValid(aSOPClassUID) || !t.w.uidValid(aSOPInstanceUID) {
				continue
			}
			if cand != nil {
				return false
			}
			cand = t
		}
		if cand == nil {
			return false
		}
		commit(cand)
		return true
	})
	if ing.failed() {
		return nil, nil
	}
	tries := make([]attempt, len(tasks))
	for i, t := range tasks {
		tries[i] = attempt{enc: t.enc, w: t.w, werr: t.err}
	}
	a, err := chooseRaw(tries)
	if err != nil {
		return nil, err
	}
	inst, m, err := rawInstance(a, warn)
	if err != nil {
		return nil, err
	}
	switch {
	case meta == nil:
		ing.commitRaw(m)
		ing.decider(a.w, rawTS[a.enc], a.enc.big, true)
	case !bytes.Equal(meta, m):
		return nil, newError(ErrCodeTooLarge, 0, -1,
			"bare dataset: the file meta group written in front of it when its first %d bytes (limit Buffer) had been read does not match the encoding it turned out to have",
			ing.lim.Buffer)
	}
	return ing.finish(inst, warn)
}

// uidValid reports whether the walker has found the attribute i and it
// is a UID checkRequired accepts.
func (w *walker) uidValid(i int) bool {
	u, n := w.attrs[i].trimmed()
	return w.seen[i] && n > 0 && n <= uid.MaxLen && uid.Valid(string(u))
}

func (ing *ingest) commitRaw(meta []byte) {
	prefix := make([]byte, 0, 132+len(meta))
	prefix = append(append(append(prefix, make([]byte, 128)...), "DICM"...), meta...)
	ing.commit(prefix, false)
}

// replayMax is how much of a deflated dataset with a zlib header is held
// while it is inflated as raw deflate, for a second try as zlib. A zlib
// header read as raw deflate starts a stored block whose length check
// fails at once unless the stream is crafted.
const replayMax = minWindow

// inflated is the deflated branch of parsePart10 for a stream: the
// dataset is inflated as it is walked, and the input written as it stays
// (deflated).
func (ing *ingest) inflated(meta metaInfo, ts tsInfo, warn *warnings) (*walker, *Error) {
	s := ing.src
	rest := &restReader{ing: ing, cur: meta.end, from: -1}
	zl := (&cursor{src: s}).need(meta.end, meta.end+2) && isZlibHeader(s.bytes(meta.end, 2))
	var before warnings
	if zl {
		rest.from = meta.end
		before = warnings{list: slices.Clone(warn.list), seen: maps.Clone(warn.seen), dropped: warn.dropped}
	}
	w, werr, ierr := ing.walkInflated(flate.NewReader(rest), meta, ts, warn)
	if ierr != nil && zl && !ing.failed() {
		// As inflate: some writers wrap the stream in a zlib header.
		if rest.from < 0 {
			return nil, newError(ErrCodeTooLarge, 0, int64(meta.end),
				"deflated dataset at offset %d has a zlib header and is no valid raw deflate stream; its first %d bytes, needed to inflate it again as zlib, are no longer held",
				meta.end, replayMax)
		}
		rest.cur, rest.from = meta.end, -1
		*warn = before
		warn.add(zlibWarning)
		if zr, zerr := zlib.NewReader(rest); zerr == nil {
			zw, zwerr, zierr := ing.walkInflated(zr, meta, ts, warn)
			if zierr == nil || errors.Is(zierr, errInflateLimit) {
				w, werr, ierr = zw, zwerr, zierr
			}
		}
	}
	if ierr != nil {
		return nil, inflateError(ierr, int64(meta.end), ing.lim)
	}
	return w, werr
}

// walkInflated walks the dataset dec inflates. Parse inflates the whole
// dataset before walking it, so the inflation is finished even when the
// walk fails early: an inflate error wins.
func (ing *ingest) walkInflated(dec io.Reader, meta metaInfo, ts tsInfo, warn *warnings) (*walker, *Error, error) {
	inf := &inflater{r: dec, limit: ing.lim.MaxInflated}
	src := streamSource(inf, ing.lim.Buffer, ing)
	w := newWalker(src, ing.lim, warn)
	ing.decider(w, meta.ts, ts.enc.big, false)
	w.inflatedAt = int64(meta.end)
	werr := w.walk(0, ts.enc)
	src.drain()
	return w, werr, inf.err
}

// inflater feeds a window with an inflated dataset.
type inflater struct {
	r        io.Reader
	n, limit int64
	err      error // the decompressor's error, or errInflateLimit
	done     bool
}

func (f *inflater) feed(p []byte) (int, bool) {
	if f.done {
		return 0, true
	}
	for empty := 0; ; empty++ {
		n, err := f.r.Read(p)
		f.n += int64(n)
		switch {
		case f.n > f.limit:
			f.err = errInflateLimit
		case err == io.EOF:
		case err != nil:
			f.err = err
		case n == 0 && empty < 100:
			continue
		case n == 0:
			f.err = io.ErrNoProgress
		default:
			return n, false
		}
		f.done = true
		return n, true
	}
}

// restReader reads the input from cur on for a decompressor: the window
// first, then more as it moves on. While from >= 0 the window keeps the
// input from there, for a second try as zlib.
type restReader struct {
	ing       *ingest
	cur, from int
}

func (r *restReader) fill() bool {
	s := r.ing.src
	for r.cur >= s.end() {
		if s.eof {
			return false
		}
		if r.from >= 0 && r.cur-r.from >= replayMax {
			r.from = -1
		}
		keep := r.cur
		if r.from >= 0 {
			keep = r.from
		}
		if s.more(keep) {
			if r.from >= 0 {
				r.from = -1
				continue
			}
			r.ing.overflowed(s)
		}
	}
	return true
}

func (r *restReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !r.fill() {
		return 0, io.EOF
	}
	s := r.ing.src
	n := min(len(p), s.end()-r.cur)
	copy(p, s.bytes(r.cur, n))
	r.cur += n
	return n, nil
}

func (r *restReader) ReadByte() (byte, error) {
	s := r.ing.src
	if r.cur >= s.end() && !r.fill() {
		return 0, io.EOF
	}
	var b byte
	if r.cur >= s.base { // else a run of zeros the window dropped
		b = s.buf[r.cur-s.base]
	}
	r.cur++
	return b, nil
}
