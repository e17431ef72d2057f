package dicomio

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math"
	"runtime"
	"strconv"
)

// ImplementationClassUID is written into the file meta group this package
// adds to bare datasets, identifying pacsnet as the writer of that group.
const ImplementationClassUID = "1.2.826.0.1.3680043.10.1455.1"

// ImplementationVersionName accompanies [ImplementationClassUID].
const ImplementationVersionName = "PACSNET_1"

// Instance is a validated, normalized DICOM instance.
type Instance struct {
	Data   []byte   // normalized Part-10 bytes (nil from ParseStream, which writes them out)
	Digest [32]byte // SHA-256 of Data
	Raw    bool     // the input was a bare dataset (no preamble/DICM/meta) and a file meta group was added

	TransferSyntaxUID, SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID string
	SpecificCharacterSet                                                                string
	PatientID, IssuerOfPatientID, PatientName, PatientBirthDate, PatientSex             string // UTF-8
	StudyDate, StudyTime, StudyDescription, AccessionNumber, StudyID                    string
	Modality, SeriesDescription                                                         string
	SeriesNumber, InstanceNumber                                                        int // 0 when absent or not a valid IS
	NumberOfFrames                                                                      int // 0 when absent or invalid (then a warning)
	Warnings                                                                            []string

	unstorable *Error // see Storable
}

// Parse validates data as a DICOM instance (a Part-10 file, or a bare
// dataset as carried by C-STORE) and returns it normalized. It never
// panics and never modifies data; Instance.Data is a new slice. Every
// error is an *[Error].
func Parse(data []byte, lim Limits) (*Instance, error) {
	inst, err := parse(data, lim, false)
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// Storable reports whether an archive can file the instance: a Part-10
// file whose structure is sound parses even without SOP Class, SOP
// Instance, Study Instance or Series Instance UID, but it cannot be stored
// under a study. The error is an *Error with ErrCodeMissingAttribute.
func (i *Instance) Storable() error {
	if i.unstorable != nil {
		return i.unstorable
	}
	return nil
}

// Read reads one instance from r (at most lim.MaxSize+1 bytes, so a
// stream that is too long is refused with ErrCodeTooLarge without being
// read to its end) and parses it like [Parse]. Every error is an *[Error];
// a failing reader gives ErrCodeIO wrapping the reader's error.
func Read(r io.Reader, lim Limits) (*Instance, error) {
	lim = lim.withDefaults()
	buf, err := readLimited(r, min(lim.MaxSize, math.MaxInt64-1)+1)
	if err != nil {
		return nil, readError(err, int64(len(buf)))
	}
	if int64(len(buf)) > lim.MaxSize {
		return nil, tooLarge(lim)
	}
	inst, perr := parse(buf, lim, true)
	if perr != nil {
		return nil, perr
	}
	return inst, nil
}

// readError is ErrCodeIO for a reader that failed after n bytes. The
// reader's error stays out of Msg: it may name a file, and file names can
// carry patient names. errors.Unwrap has it.
func readError(err error, n int64) *Error {
	return &Error{Code: ErrCodeIO, Offset: n, err: err, Msg: "reading the input failed after " + strconv.FormatInt(n, 10) + " bytes"}
}

func tooLarge(lim Limits) *Error {
	return newError(ErrCodeTooLarge, 0, -1, "instance is larger than %d bytes (limit MaxSize)", lim.MaxSize)
}

// readLimited reads r to EOF or to limit bytes. It sizes its buffer from the
// reader when the reader can tell (bytes.Reader, os.File) so that the
// common case reads into one exactly sized allocation.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	hint := int64(512)
	switch v := r.(type) {
	case interface{ Len() int }:
		hint = int64(v.Len()) + 1
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			hint = fi.Size() + 1
		}
	}
	hint = max(min(hint, limit), 512)
	buf := make([]byte, 0, hint)
	lr := io.LimitReader(r, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// recovered turns a panic into ErrCodeInternal. Only runtime errors are
// quoted: their text is about indexes and types, never about values.
func recovered(r any) *Error {
	msg := "internal error while parsing (recovered panic)"
	if re, ok := r.(runtime.Error); ok {
		msg += ": " + re.Error()
	}
	return &Error{Code: ErrCodeInternal, Offset: -1, Msg: msg}
}

// parse does the work of Parse and Read. owned means data belongs to us
// and may become Instance.Data (its preamble zeroed in place).
func parse(data []byte, lim Limits, owned bool) (inst *Instance, perr *Error) {
	defer func() {
		if r := recover(); r != nil {
			inst, perr = nil, recovered(r)
		}
	}()
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxSize {
		return nil, tooLarge(lim)
	}
	if len(data) == 0 {
		return nil, newError(ErrCodeTruncated, 0, 0, "input is empty")
	}
	warn := &warnings{}
	src := memSource(data)
	switch sniff(data) {
	case shapePart10:
		return parsePart10(src, data, nil, 132, lim, warn, owned)
	case shapeNoPreamble:
		warn.add(noPreambleWarning)
		return parsePart10(src, data, make([]byte, 128), 4, lim, warn, false)
	case shapeMetaOnly:
		warn.add(metaOnlyWarning)
		return parsePart10(src, data, append(make([]byte, 128), "DICM"...), 0, lim, warn, false)
	}
	return parseRaw(src, data, lim, warn)
}

// What the start of an input says it is.
const (
	shapeRaw        = iota // a bare dataset
	shapePart10            // preamble, DICM, file meta, dataset
	shapeNoPreamble        // DICM, file meta, dataset
	shapeMetaOnly          // file meta, dataset
)

const (
	noPreambleWarning = "Part-10 file without its 128-byte preamble; a zero preamble was added"
	metaOnlyWarning   = "file meta group without preamble and DICM prefix; both were added"
)

// sniff classifies an input by its first 132 bytes (head may be longer).
func sniff(head []byte) int {
	switch {
	case len(head) >= 132 && string(head[128:132]) == "DICM":
		return shapePart10
	case len(head) >= 4 && string(head[:4]) == "DICM" && looksLikeMeta(head, 4):
		return shapeNoPreamble
	case looksLikeMeta(head, 0):
		return shapeMetaOnly
	}
	return shapeRaw
}

// looksLikeMeta reports whether an explicit VR little endian group 0002
// element starts at p.
func looksLikeMeta(data []byte, p int) bool {
	if len(data) < p+8 || binary.LittleEndian.Uint16(data[p:]) != 0x0002 {
		return false
	}
	_, ok := vrInfo(uint16(data[p+4])<<8 | uint16(data[p+5]))
	return ok
}

type metaInfo struct {
	end                        int
	ts, sopClass, sopInstance  string // trimmed; cut when longer than maxIndexValueLen+1 bytes (streaming, see value)
	tsLen                      int    // length of the trimmed Transfer Syntax UID
	haveTS, haveClass, haveIns bool
}

// parseMeta walks the file meta group (always explicit VR little endian)
// starting at start. The group's extent is found by walking group 0002
// elements rather than trusting (0002,0000): the group length is optional
// in practice and sometimes wrong; a disagreement is only a warning. The
// group length is believed over the walk only where it ends on an element
// boundary followed by group 0002 elements that are not explicit VR.
// Where an element repeats, its first value counts.
func parseMeta(c *cursor, start int, lim Limits, warn *warnings) (metaInfo, *Error) {
	var m metaInfo
	s := c.src
	pos := start
	groupEnd := int64(-1)
	n := 0
	for c.need(pos, pos+8) && binary.LittleEndian.Uint16(s.bytes(pos, 2)) == 0x0002 {
		h := s.bytes(pos, 8)
		t := uint32(0x0002)<<16 | uint32(binary.LittleEndian.Uint16(h[2:]))
		vr := uint16(h[4])<<8 | uint16(h[5])
		long, ok := vrInfo(vr)
		if int64(pos) == groupEnd && !ok {
			// The group length ends here and what follows is not explicit
			// VR: group 0002 elements in the dataset's own encoding (a
			// bare dataset that carried them), not meta.
			break
		}
		if !ok {
			return m, newError(ErrCodeMalformed, t, int64(pos), "file meta element %s at offset %d is not explicit VR little endian (VR bytes 0x%02X%02X)",
				tagString(t), pos, h[4], h[5])
		}
		hdr := 8
		var l uint32
		if long {
			hdr = 12
			if !c.need(pos, pos+12) {
				return m, newError(ErrCodeTruncated, t, int64(pos), "file meta element header at offset %d needs 12 bytes but %d remain", pos, s.end()-pos)
			}
			l = binary.LittleEndian.Uint32(s.bytes(pos+8, 4))
		} else {
			l = uint32(binary.LittleEndian.Uint16(h[6:]))
		}
		if l == undefinedLength {
			return m, newError(ErrCodeMalformed, t, int64(pos), "file meta element %s at offset %d has undefined length", tagString(t), pos)
		}
		vpos, end := pos+hdr, pos+hdr+int(l)
		var v value
		fits := true
		switch {
		case t == 0x00020000 && l == 4 && pos == start,
			t == 0x00020002 && !m.haveClass, t == 0x00020003 && !m.haveIns, t == 0x00020010 && !m.haveTS:
			v, fits = c.capture(vpos, int(l), false)
		default:
			fits = c.need(end, end)
		}
		if !fits {
			return m, newError(ErrCodeTruncated, t, int64(pos), "file meta element %s at offset %d declares %d bytes but %d remain",
				tagString(t), pos, l, s.end()-pos-hdr)
		}
		n++
		if n > lim.MaxElements {
			return m, newError(ErrCodeTooLarge, t, int64(pos), "more than %d elements (limit MaxElements)", lim.MaxElements)
		}
		switch t {
		case 0x00020000:
			if l == 4 && pos == start {
				groupEnd = int64(pos) + 12 + int64(binary.LittleEndian.Uint32(v.b))
			}
		case 0x00020002:
			if !m.haveClass {
				u, _ := v.trimmed()
				m.sopClass, m.haveClass = string(u), true
			}
		case 0x00020003:
			if !m.haveIns {
				u, _ := v.trimmed()
				m.sopInstance, m.haveIns = string(u), true
			}
		case 0x00020010:
			if !m.haveTS {
				u, tn := v.trimmed()
				m.ts, m.tsLen, m.haveTS = string(u), tn, true
			}
		}
		pos = end
	}
	m.end = pos
	switch {
	case groupEnd < 0:
		warn.add("file meta has no group length (0002,0000)")
	case groupEnd != int64(pos):
		warn.add("file meta group length (0002,0000) disagrees with the extent of the group 0002 elements")
	}
	if !m.haveTS || m.ts == "" {
		return m, newError(ErrCodeMalformed, 0x00020010, int64(start), "file meta lacks Transfer Syntax UID (0002,0010)")
	}
	return m, nil
}

// metaTS looks up the transfer syntax the meta group declares.
func metaTS(meta metaInfo, metaStart int) (tsInfo, *Error) {
	ts, ok := lookupTS(meta.ts)
	if !ok {
		uid := printableUID(meta.ts)
		if meta.tsLen != len(meta.ts) {
			uid = "(" + itoa(meta.tsLen) + " bytes, not a UID)"
		}
		return ts, newError(ErrCodeUnsupported, 0x00020010, int64(metaStart), "transfer syntax %s is not supported", uid)
	}
	return ts, nil
}

// parsePart10 handles an input with a file meta group starting at
// metaStart. prefix, when not nil, is what the input lacks in front of the
// meta group (a preamble, and "DICM" too if that is missing); otherwise
// the input's own preamble is zeroed.
func parsePart10(src *source, data, prefix []byte, metaStart int, lim Limits, warn *warnings, owned bool) (*Instance, *Error) {
	meta, err := parseMeta(&cursor{src: src}, metaStart, lim, warn)
	if err != nil {
		return nil, err
	}
	ts, err := metaTS(meta, metaStart)
	if err != nil {
		return nil, err
	}

	var w *walker
	if ts.deflated {
		inflated, ierr := inflate(data[meta.end:], int64(meta.end), lim, warn)
		if ierr != nil {
			return nil, ierr
		}
		w = newWalker(memSource(inflated), lim, warn)
		w.inflatedAt = int64(meta.end)
		if werr := w.walk(0, ts.enc); werr != nil {
			return nil, werr
		}
	} else {
		w = newWalker(src, lim, warn)
		if werr := w.walk(meta.end, ts.enc); werr != nil {
			for _, alt := range rawOrder {
				if alt == ts.enc {
					continue
				}
				aw := newWalker(src, lim, &warnings{})
				if aw.walk(meta.end, alt) == nil && aw.checkRequired() == nil {
					return nil, mismatch(werr, ts.enc, alt, meta.ts)
				}
			}
			return nil, werr
		}
	}
	inst, err := part10Instance(w, meta, ts, warn)
	if err != nil {
		return nil, err
	}
	switch {
	case prefix != nil:
		inst.Data = make([]byte, 0, len(prefix)+len(data))
		inst.Data = append(append(inst.Data, prefix...), data...)
	case owned:
		inst.Data = data
		clear(inst.Data[:128])
	default:
		// make+copy of the whole slice is compiled to one allocation
		// without zeroing; the preamble is cleared afterwards.
		inst.Data = make([]byte, len(data))
		copy(inst.Data, data)
		clear(inst.Data[:128])
	}
	inst.Digest = sha256.Sum256(inst.Data)
	inst.Warnings = warn.result()
	return inst, nil
}

// part10Instance finishes a Part-10 input whose dataset walked cleanly:
// the required attributes, the index attributes, and the warnings that
// compare the dataset with its meta group. Data, Digest and Warnings are
// left to the caller.
func part10Instance(w *walker, meta metaInfo, ts tsInfo, warn *warnings) (*Instance, *Error) {
	// A structurally sound file without the UIDs an archive files it by
	// still parses; Storable reports it (a Part-10 file keeps its own meta,
	// so nothing needs them here).
	var unstorable *Error
	if err := w.checkRequired(); err != nil {
		if err.Code != ErrCodeMissingAttribute {
			return nil, err
		}
		unstorable = err
	}
	if ts.encapsulated && w.pixelNative {
		warn.add("Pixel Data (7FE0,0010) has a defined length in an encapsulated transfer syntax")
	}
	if !ts.encapsulated && w.pixelEncaps {
		warn.add("encapsulated Pixel Data (7FE0,0010) in a native transfer syntax")
	}
	inst := &Instance{TransferSyntaxUID: meta.ts, unstorable: unstorable}
	if err := w.fill(inst, ts.enc.big); err != nil {
		return nil, err
	}
	switch {
	case unstorable != nil:
	case !meta.haveClass:
		warn.add("file meta lacks Media Storage SOP Class UID (0002,0002)")
	case meta.sopClass != inst.SOPClassUID:
		warn.add("Media Storage SOP Class UID (0002,0002) differs from SOP Class UID (0008,0016)")
	}
	switch {
	case unstorable != nil:
	case !meta.haveIns:
		warn.add("file meta lacks Media Storage SOP Instance UID (0002,0003)")
	case meta.sopInstance != inst.SOPInstanceUID:
		warn.add("Media Storage SOP Instance UID (0002,0003) differs from SOP Instance UID (0008,0018)")
	}
	return inst, nil
}

// mismatch is the clearer error for a dataset that fails to walk in its
// declared encoding but walks cleanly in alt: a transfer syntax that lies
// about the encoding is a writer bug worth naming.
func mismatch(werr *Error, declared, alt layout, tsUID string) *Error {
	return &Error{Code: ErrCodeMalformed, Tag: werr.Tag, Offset: werr.Offset,
		Msg: "dataset does not match its transfer syntax " + printableUID(tsUID) + " (" + declared.String() +
			"): it is encoded as " + alt.String() + " (reading it as declared fails: " + werr.Msg + ")"}
}

// inflate expands a deflated dataset (PS3.5 A.5: raw DEFLATE, no zlib
// header) into memory, refusing more than lim.MaxInflated bytes.
func inflate(src []byte, at int64, lim Limits, warn *warnings) ([]byte, *Error) {
	out, err := inflateWith(flate.NewReader(bytes.NewReader(src)), lim.MaxInflated, len(src))
	if err != nil && isZlibHeader(src) {
		// Some writers wrap the stream in a zlib header; readers accept it.
		zr, zerr := zlib.NewReader(bytes.NewReader(src))
		if zerr == nil {
			if out2, err2 := inflateWith(zr, lim.MaxInflated, len(src)); err2 == nil || errors.Is(err2, errInflateLimit) {
				warn.add(zlibWarning)
				out, err = out2, err2
			}
		}
	}
	if err != nil {
		return nil, inflateError(err, at, lim)
	}
	return out, nil
}

const zlibWarning = "deflated dataset has a zlib header (PS3.5 A.5 requires raw deflate)"

// inflateError is the error for a deflated dataset at offset at that did
// not inflate.
func inflateError(err error, at int64, lim Limits) *Error {
	switch {
	case errors.Is(err, errInflateLimit):
		return newError(ErrCodeTooLarge, 0, at, "deflated dataset at offset %d inflates to more than %d bytes (limit MaxInflated)", at, lim.MaxInflated)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(ErrCodeTruncated, 0, at, "deflated dataset at offset %d ends before its deflate stream does", at)
	}
	return newError(ErrCodeMalformed, 0, at, "deflated dataset at offset %d is not a valid deflate stream (%v)", at, err)
}

var errInflateLimit = errors.New("inflate limit exceeded")

func inflateWith(r io.Reader, limit int64, srcLen int) ([]byte, error) {
	// Start from a modest multiple of the input and double: the memory
	// spent is bounded by about 2*limit whatever the stream claims.
	hint := min(int64(srcLen)*4, limit+1)
	hint = max(hint, 4096)
	buf := make([]byte, 0, hint)
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*int64(cap(buf)), limit+1))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errInflateLimit
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func isZlibHeader(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0F == 8 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// rawOrder is the order in which bare dataset encodings are tried.
var rawOrder = [...]layout{encExplicitLE, encImplicitLE, encExplicitBE}

var rawTS = map[layout]string{
	encExplicitLE: ExplicitVRLittleEndian,
	encImplicitLE: ImplicitVRLittleEndian,
	encExplicitBE: ExplicitVRBigEndian,
}

// attempt is the walk of a bare dataset in one candidate encoding.
type attempt struct {
	enc  layout
	w    *walker
	werr *Error // structural failure
	rerr *Error // required attributes failure
}

// parseRaw handles a bare dataset: its encoding is accepted only when
// exactly one candidate walks the whole dataset cleanly and yields the
// required attributes.
func parseRaw(src *source, data []byte, lim Limits, warn *warnings) (*Instance, *Error) {
	var tries [len(rawOrder)]attempt
	for i, enc := range rawOrder {
		w := newWalker(src, lim, &warnings{})
		tries[i] = attempt{enc: enc, w: w, werr: w.walk(0, enc)}
		if tries[i].werr != nil && w.resourceLimited(tries[i].werr) {
			break // the answer, whatever the others would give (see chooseRaw)
		}
	}
	a, err := chooseRaw(tries[:])
	if err != nil {
		return nil, err
	}
	inst, meta, err := rawInstance(a, warn)
	if err != nil {
		return nil, err
	}
	return withMeta(inst, meta, data, warn), nil
}

// resourceLimited reports whether a walk error is a resource limit hit
// after a good start: that is the answer for a bare dataset.
func (w *walker) resourceLimited(werr *Error) bool {
	return (werr.Code == ErrCodeTooDeep || werr.Code == ErrCodeTooLarge) && w.firstElemDone
}

// chooseRaw picks the encoding of a bare dataset from the walks in the
// candidate encodings, in rawOrder (a walk that is missing, its w nil,
// follows one that hit a resource limit).
func chooseRaw(tries []attempt) (attempt, *Error) {
	var good []int
	for i := range tries {
		a := &tries[i]
		if a.w == nil {
			break
		}
		if a.werr == nil {
			a.rerr = a.w.checkRequired()
			if a.rerr == nil {
				good = append(good, i)
			}
		} else if a.w.resourceLimited(a.werr) {
			// A resource limit hit after a good start is the answer.
			return attempt{}, a.werr
		}
	}
	switch {
	case len(good) > 1:
		return attempt{}, newError(ErrCodeMalformed, 0, 0, "bare dataset is ambiguous: it walks cleanly as both %s and %s", tries[good[0]].enc, tries[good[1]].enc)
	case len(good) == 1:
		return tries[good[0]], nil
	}
	for _, a := range tries {
		if a.werr == nil {
			return attempt{}, a.rerr // well-formed, but not storable
		}
	}
	// Report the attempt that got furthest when it got past the first
	// element and further than any other: that is most likely the real
	// encoding, and its error the real defect.
	best := -1
	for i, a := range tries {
		if !a.w.firstElemDone {
			continue
		}
		if best < 0 || a.werr.Offset > tries[best].werr.Offset {
			best = i
		} else if a.werr.Offset == tries[best].werr.Offset {
			best = -2
			break
		}
	}
	if best >= 0 {
		e := *tries[best].werr
		e.Msg = "bare dataset read as " + tries[best].enc.String() + ": " + e.Msg
		return attempt{}, &e
	}
	// No encoding reads even the first element: whatever it is (a letter,
	// a JPEG, random bytes), it is not DICOM, and a trace of three failed
	// walks would only hide that.
	return attempt{}, &Error{Code: ErrCodeNotDICOM, Offset: 0,
		Msg: "not a DICOM file: no DICM prefix, and no DICOM encoding reads a data element at its start"}
}

// rawInstance finishes the bare dataset that walked cleanly as a.enc: its
// warnings go in front of any from parse into warn, the index attributes
// are extracted, and the file meta group to put in front is returned.
func rawInstance(a attempt, warn *warnings) (*Instance, []byte, *Error) {
	for _, m := range a.w.warn.list {
		warn.add(m)
	}
	warn.dropped += a.w.warn.dropped
	a.w.warn = warn
	return wrapDataset(a.w, rawTS[a.enc], a.enc.big)
}

// withMeta makes a bare dataset's normalized bytes: a zero preamble,
// DICM, the meta group made for it, and the dataset as it came.
func withMeta(inst *Instance, meta, data []byte, warn *warnings) *Instance {
	inst.Data = make([]byte, 0, 132+len(meta)+len(data))
	inst.Data = append(inst.Data, make([]byte, 128)...)
	inst.Data = append(inst.Data, "DICM"...)
	inst.Data = append(inst.Data, meta...)
	inst.Data = append(inst.Data, data...)
	inst.Digest = sha256.Sum256(inst.Data)
	inst.Warnings = warn.result()
	return inst
}

// wrapDataset extracts the attributes of a bare dataset that walked
// cleanly and returns the meta group that goes in front of it (after a
// zero preamble and DICM).
func wrapDataset(w *walker, tsUID string, big bool) (*Instance, []byte, *Error) {
	inst := &Instance{Raw: true, TransferSyntaxUID: tsUID}
	if err := w.fill(inst, big); err != nil {
		return nil, nil, err
	}
	return inst, encodeMeta(inst.SOPClassUID, inst.SOPInstanceUID, tsUID), nil
}

// ParseDataset is [Parse] for a bare dataset whose transfer syntax is
// known, such as a C-STORE payload received on a negotiated presentation
// context: nothing is guessed (so a deflated dataset works too), and a
// dataset that does not match transferSyntaxUID is refused with a message
// saying so. The result is normalized like a bare dataset given to Parse
// (Raw is true). Every error is an *[Error].
func ParseDataset(data []byte, transferSyntaxUID string, lim Limits) (*Instance, error) {
	inst, err := parseDataset(data, transferSyntaxUID, lim)
	if err != nil {
		return nil, err
	}
	return inst, nil
}

func parseDataset(data []byte, tsUID string, lim Limits) (inst *Instance, perr *Error) {
	defer func() {
		if r := recover(); r != nil {
			inst, perr = nil, recovered(r)
		}
	}()
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxSize {
		return nil, tooLarge(lim)
	}
	tsUID = string(trimPadding([]byte(tsUID), true))
	ts, ok := lookupTS(tsUID)
	if !ok {
		return nil, newError(ErrCodeUnsupported, 0, -1, "transfer syntax %s is not supported", printableUID(tsUID))
	}
	warn := &warnings{}
	src := memSource(data)
	w := newWalker(src, lim, warn)
	if ts.deflated {
		inflated, ierr := inflate(data, 0, lim, warn)
		if ierr != nil {
			return nil, ierr
		}
		w = newWalker(memSource(inflated), lim, warn)
		w.inflatedAt = 0
	}
	if werr := w.walk(0, ts.enc); werr != nil {
		if ts.deflated {
			return nil, werr
		}
		for _, alt := range rawOrder {
			if alt == ts.enc {
				continue
			}
			aw := newWalker(src, lim, &warnings{})
			if aw.walk(0, alt) == nil && aw.checkRequired() == nil {
				return nil, mismatch(werr, ts.enc, alt, tsUID)
			}
		}
		return nil, werr
	}
	if err := w.checkRequired(); err != nil {
		return nil, err
	}
	inst, meta, err := wrapDataset(w, tsUID, ts.enc.big)
	if err != nil {
		return nil, err
	}
	return withMeta(inst, meta, data, warn), nil
}

// encodeMeta encodes a file meta group (PS3.10 7.1) in explicit VR little
// endian, by hand: it is seven elements, and the dataset it precedes is
// never re-encoded.
func encodeMeta(sopClass, sopInstance, tsUID string) []byte {
	var body []byte
	body = appendElem(body, 0x0001, "OB", []byte{0, 1})
	body = appendElem(body, 0x0002, "UI", pad([]byte(sopClass), 0))
	body = appendElem(body, 0x0003, "UI", pad([]byte(sopInstance), 0))
	body = appendElem(body, 0x0010, "UI", pad([]byte(tsUID), 0))
	body = appendElem(body, 0x0012, "UI", pad([]byte(ImplementationClassUID), 0))
	body = appendElem(body, 0x0013, "SH", pad([]byte(ImplementationVersionName), ' '))
	gl := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	out := appendElem(make([]byte, 0, 12+len(body)), 0x0000, "UL", gl)
	return append(out, body...)
}

func pad(b []byte, with byte) []byte {
	if len(b)%2 != 0 {
		b = append(b, with)
	}
	return b
}

func appendElem(b []byte, elem uint16, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	if long, _ := vrInfo(vr2(vr)); long {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}
