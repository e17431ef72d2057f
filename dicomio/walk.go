package dicomio

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Tags the walker treats specially.
const (
	tagItem          uint32 = 0xFFFEE000
	tagItemDelim     uint32 = 0xFFFEE00D
	tagSeqDelim      uint32 = 0xFFFEE0DD
	tagPixelData     uint32 = 0x7FE00010
	undefinedLength  uint32 = 0xFFFFFFFF
	maxIndexValueLen        = 1024 // bytes; see captureAttr
)

// Index attributes captured from the top-level dataset.
const (
	aSpecificCharacterSet = iota
	aSOPClassUID
	aSOPInstanceUID
	aStudyInstanceUID
	aSeriesInstanceUID
	aPatientID
	aIssuerOfPatientID
	aPatientName
	aPatientBirthDate
	aPatientSex
	aStudyDate
	aStudyTime
	aStudyDescription
	aAccessionNumber
	aStudyID
	aModality
	aSeriesDescription
	aSeriesNumber
	aInstanceNumber
	aNumberOfFrames
	aSamplesPerPixel
	aRows
	aColumns
	aBitsAllocated
	numAttrs
)

func attrIndex(t uint32) int {
	switch t {
	case 0x00080005:
		return aSpecificCharacterSet
	case 0x00080016:
		return aSOPClassUID
	case 0x00080018:
		return aSOPInstanceUID
	case 0x0020000D:
		return aStudyInstanceUID
	case 0x0020000E:
		return aSeriesInstanceUID
	case 0x00100020:
		return aPatientID
	case 0x00100021:
		return aIssuerOfPatientID
	case 0x00100010:
		return aPatientName
	case 0x00100030:
		return aPatientBirthDate
	case 0x00100040:
		return aPatientSex
	case 0x00080020:
		return aStudyDate
	case 0x00080030:
		return aStudyTime
	case 0x00081030:
		return aStudyDescription
	case 0x00080050:
		return aAccessionNumber
	case 0x00200010:
		return aStudyID
	case 0x00080060:
		return aModality
	case 0x0008103E:
		return aSeriesDescription
	case 0x00200011:
		return aSeriesNumber
	case 0x00200013:
		return aInstanceNumber
	case 0x00280008:
		return aNumberOfFrames
	case 0x00280002:
		return aSamplesPerPixel
	case 0x00280010:
		return aRows
	case 0x00280011:
		return aColumns
	case 0x00280100:
		return aBitsAllocated
	}
	return -1
}

var attrTags = func() [numAttrs]uint32 {
	var a [numAttrs]uint32
	for _, t := range []uint32{
		0x00080005, 0x00080016, 0x00080018, 0x0020000D, 0x0020000E, 0x00100020,
		0x00100021, 0x00100010, 0x00100030, 0x00100040, 0x00080020, 0x00080030,
		0x00081030, 0x00080050, 0x00200010, 0x00080060, 0x0008103E, 0x00200011,
		0x00200013, 0x00280008, 0x00280002, 0x00280010, 0x00280011, 0x00280100,
	} {
		a[attrIndex(t)] = t
	}
	return a
}()

type frameKind uint8

const (
	kDataset frameKind = iota // the top-level dataset; ends with the input
	kItem                     // a sequence item: a nested dataset
	kSeq                      // a sequence: a list of items
	kFrags                    // encapsulated pixel data: a list of fragments
)

// frame is one open container on the walker's explicit stack. The walker
// is iterative so that nesting depth costs heap, not goroutine stack: a
// recursion bounded only by a caller-supplied MaxDepth could exhaust the
// stack, and that is a fatal error recover cannot catch.
type frame struct {
	kind  frameKind
	enc   layout
	end   int // offset just past the container, -1 for undefined length (and for the dataset)
	limit int // the nearest defined end enclosing the frame, atEOF when there is none
	tag   uint32
	start int // offset of the container's header
}

// atEOF is the limit of a frame that only the end of the input bounds. In
// a stream that end is not known until the input gets there, so every
// check against it asks the source.
const atEOF = math.MaxInt

// walker validates the structure of one dataset read from a source.
type walker struct {
	cursor
	lim        Limits
	warn       *warnings
	inflatedAt int64 // input offset of the deflated stream when the source is its inflated form, else -1

	n       int // elements, items and fragments seen
	attrs   [numAttrs]value
	seen    [numAttrs]bool
	lastTop uint32

	pixelNative   bool
	pixelLen      int64
	pixelEncaps   bool
	firstElemDone bool // the first element of the dataset was read without error

	// onAttrs, when set, is called once, when the walk has read every
	// index attribute it can find: at the first top-level element past
	// the last of them (lastAttrTag), or at the end of a clean walk
	// (ParseStream's AttributeSink).
	onAttrs   func(*walker)
	attrsDone bool
	disorder  bool // top-level elements came out of ascending tag order

	// pend is a container whose end Parse would have checked against the
	// end of the input when it was opened; a stream cannot know that end
	// before reading past the container, which may be larger than the
	// window. The walk goes on inside it and settles the check when it
	// ends (see walk); a failed check is then the error, as in Parse.
	pend pending
}

type pending struct {
	end    int // 0: none
	t      uint32
	pos    int
	hdr, l int64
	what   what
	first  bool // firstElemDone when the container was opened
}

func newWalker(src *source, lim Limits, warn *warnings) *walker {
	return &walker{cursor: cursor{src: src}, lim: lim, warn: warn, inflatedAt: -1}
}

func u16(b []byte, big bool) uint16 {
	if big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func u32(b []byte, big bool) uint32 {
	if big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func tagOf(b []byte, big bool) uint32 {
	return uint32(u16(b, big))<<16 | uint32(u16(b[2:], big))
}

func (w *walker) err(code ErrorCode, t uint32, pos int, format string, args ...any) *Error {
	e := newError(code, t, int64(pos), format, args...)
	if w.inflatedAt >= 0 {
		e.Offset = w.inflatedAt
		e.Msg += fmt.Sprintf(" (offsets are within the inflated dataset whose deflated form starts at offset %d)", w.inflatedAt)
	}
	return e
}

// what names the thing whose length did not fit, for messages.
type what uint8

const (
	whatElement what = iota
	whatItem
	whatFragment
)

func (k what) name(t uint32) string {
	switch k {
	case whatItem:
		return "item"
	case whatFragment:
		return "pixel data fragment"
	}
	return "element " + tagString(t)
}

// has reports whether the n bytes at pos lie within f and the input.
func (w *walker) has(f *frame, pos, n int) bool {
	p := pos + n
	return p <= f.limit && (p <= w.src.end() || w.needMore(pos, p))
}

// limitIsEnd reports whether f is bounded by the end of the input: then a
// length that does not fit is truncation rather than inconsistency. A
// container that ends exactly where the input does counts too.
func (w *walker) limitIsEnd(f *frame) bool {
	if f.limit == atEOF {
		return true
	}
	return !w.need(math.MaxInt, f.limit+1) && w.src.end() == f.limit
}

// short reports that need bytes starting at pos do not fit below f.limit:
// truncation when the limit is the end of the data, inconsistent lengths
// when it is an enclosing container's declared end.
func (w *walker) short(f *frame, t uint32, pos int, hdr, need int64, k what) *Error {
	if w.limitIsEnd(f) {
		remain := int64(w.src.end()) - int64(pos) - hdr
		return w.err(ErrCodeTruncated, t, pos, "%s at offset %d declares %d bytes but %d remain", k.name(t), pos, need, remain)
	}
	remain := int64(f.limit) - int64(pos) - hdr
	return w.err(ErrCodeMalformed, t, pos, "%s at offset %d declares %d bytes but its enclosing %s at offset %d has only %d left",
		k.name(t), pos, need, containerName(f), f.start, remain)
}

func (w *walker) shortHeader(f *frame, pos, hdr int) *Error {
	if w.limitIsEnd(f) {
		return w.err(ErrCodeTruncated, 0, pos, "element header at offset %d needs %d bytes but %d remain", pos, hdr, w.src.end()-pos)
	}
	return w.err(ErrCodeMalformed, 0, pos, "element header at offset %d needs %d bytes but its enclosing %s at offset %d has only %d left",
		pos, hdr, containerName(f), f.start, f.limit-pos)
}

// container checks that a container of defined length opened at pos in a
// frame bounded by the end of the input ends within the input; a stream
// defers the check (see pending) unless the input is already known to be
// long enough or to be too short.
func (w *walker) container(t uint32, pos, hdr int, l uint32, k what) bool {
	end := pos + hdr + int(l)
	s := w.src
	if end <= s.end() {
		return true
	}
	if s.eof {
		return false
	}
	if w.pend.end != 0 && s.end() >= w.pend.end {
		w.pend = pending{}
	}
	if w.pend.end == 0 {
		w.pend = pending{end: end, t: t, pos: pos, hdr: int64(hdr), l: int64(l), what: k, first: w.firstElemDone}
		return true
	}
	return w.need(pos+hdr, end)
}

func containerName(f *frame) string {
	switch f.kind {
	case kItem:
		return "item"
	case kSeq:
		return "sequence " + tagString(f.tag)
	case kFrags:
		if f.tag != tagPixelData {
			return "encapsulated element " + tagString(f.tag)
		}
		return "pixel data " + tagString(f.tag)
	}
	return "dataset"
}

func (w *walker) count(t uint32, pos int) *Error {
	w.n++
	if w.n > w.lim.MaxElements {
		return w.err(ErrCodeTooLarge, t, pos, "more than %d elements (limit MaxElements)", w.lim.MaxElements)
	}
	return nil
}

// walk validates the dataset from start to the end of the input.
// lastAttrTag is the largest tag of attrTags: past it, a walk has read
// every index attribute of a dataset in ascending tag order.
const lastAttrTag = 0x00280100

// attrsRead marks that the walk has read the index attributes and calls
// onAttrs, once.
func (w *walker) attrsRead() {
	if w.attrsDone {
		return
	}
	w.attrsDone = true
	if w.onAttrs != nil {
		w.onAttrs(w)
	}
}

func (w *walker) walk(start int, enc layout) *Error {
	err := w.walkFrom(start, enc)
	if p := w.pend; p.end != 0 && !w.need(math.MaxInt, p.end) {
		// Parse would have refused the container when it was opened, before
		// anything found inside it.
		w.firstElemDone = p.first
		return w.short(&frame{limit: atEOF}, p.t, p.pos, p.hdr, p.l, p.what)
	}
	if err == nil {
		if w.attrsDone && w.disorder && w.onAttrs != nil {
			// Out of order, index attributes may have come after the
			// point where they were looked for: look again.
			w.onAttrs(w)
		}
		w.attrsRead()
	}
	return err
}

func (w *walker) walkFrom(start int, enc layout) *Error {
	stack := make([]frame, 1, 16)
	stack[0] = frame{kind: kDataset, enc: enc, end: -1, limit: atEOF, start: start}
	depth := 0
	pos := start
	src := w.src
	for {
		f := &stack[len(stack)-1]
		if f.end >= 0 {
			if pos == f.end {
				if f.kind == kSeq {
					depth--
				}
				stack = stack[:len(stack)-1]
				continue
			}
		} else if !w.need(pos, pos+1) {
			if f.kind == kDataset {
				return nil
			}
			// A defined end was checked against the input when its
			// container was opened: only undefined-length ones get here.
			return w.err(ErrCodeTruncated, f.tag, pos, "%s starting at offset %d ends without its delimitation item (data ends at offset %d)",
				containerName(f), f.start, pos)
		}
		big := f.enc.big
		switch f.kind {
		case kSeq, kFrags:
			if !w.has(f, pos, 8) {
				return w.shortHeader(f, pos, 8)
			}
			h := src.bytes(pos, 8)
			t := tagOf(h, big)
			l := u32(h[4:], big)
			switch t {
			case tagItem:
				if err := w.count(t, pos); err != nil {
					return err
				}
				if l == undefinedLength {
					if f.kind == kFrags {
						return w.err(ErrCodeMalformed, t, pos, "pixel data fragment at offset %d has undefined length", pos)
					}
					stack = append(stack, frame{kind: kItem, enc: f.enc, end: -1, limit: f.limit, tag: t, start: pos})
					pos += 8
					continue
				}
				k := whatItem
				if f.kind == kFrags {
					k = whatFragment
				}
				if int64(pos)+8+int64(l) > int64(f.limit) {
					return w.short(f, t, pos, 8, int64(l), k)
				}
				end := pos + 8 + int(l)
				if f.kind == kFrags {
					if f.limit == atEOF && !w.need(end, end) {
						return w.short(f, t, pos, 8, int64(l), k)
					}
					pos = end
					continue
				}
				if f.limit == atEOF && !w.container(t, pos, 8, l, k) {
					return w.short(f, t, pos, 8, int64(l), k)
				}
				stack = append(stack, frame{kind: kItem, enc: f.enc, end: end, limit: end, tag: t, start: pos})
				pos += 8
			case tagSeqDelim:
				if f.end >= 0 {
					return w.err(ErrCodeMalformed, t, pos, "sequence delimitation item at offset %d inside %s of defined length", pos, containerName(f))
				}
				if l != 0 {
					w.warn.add("sequence delimitation item with non-zero length")
				}
				pos += 8
				if f.kind == kSeq {
					depth--
				}
				stack = stack[:len(stack)-1]
			default:
				return w.err(ErrCodeMalformed, t, pos, "expected an item (FFFE,E000) in %s at offset %d, found %s", containerName(f), pos, tagString(t))
			}
			continue
		}

		// kDataset or kItem: a data element.
		top := f.kind == kDataset
		if !w.has(f, pos, 8) {
			if top && w.zeroTail(pos) {
				w.warn.add("zero padding after the last element")
				return nil
			}
			return w.shortHeader(f, pos, 8)
		}
		h := src.bytes(pos, 8)
		t := tagOf(h, big)
		if t>>16 == 0xFFFE {
			l := u32(h[4:], big)
			switch {
			case t == tagItemDelim && f.kind == kItem && f.end < 0:
				if l != 0 {
					w.warn.add("item delimitation item with non-zero length")
				}
				pos += 8
				stack = stack[:len(stack)-1]
				continue
			case t == tagSeqDelim && top:
				w.warn.add("stray sequence delimitation item in the top-level dataset")
				pos += 8
				continue
			}
			return w.err(ErrCodeMalformed, t, pos, "unexpected %s at offset %d in %s", tagString(t), pos, containerName(f))
		}
		if top && t == 0 {
			if w.zeroTail(pos) {
				w.warn.add("zero padding after the last element")
				return nil
			}
			h = src.bytes(pos, 8) // reading ahead may have moved the window
		}
		if err := w.count(t, pos); err != nil {
			return err
		}

		var (
			l    uint32
			hdr  = 8
			vr   uint16
			isSQ bool
		)
		if f.enc.explicit {
			vr = uint16(h[4])<<8 | uint16(h[5])
			long, ok := vrInfo(vr)
			if !ok {
				return w.badVR(f, t, pos, vr)
			}
			if long {
				hdr = 12
				if !w.has(f, pos, 12) {
					return w.shortHeader(f, pos, 12)
				}
				l = u32(src.bytes(pos+8, 4), big)
			} else {
				l = uint32(u16(h[6:], big))
			}
			isSQ = vr == vrSQ
		} else {
			l = u32(h[4:], big)
		}
		vpos := pos + hdr

		if top && t > lastAttrTag && !w.attrsDone {
			w.attrsRead()
		}
		if top && w.lastTop != 0 && t <= w.lastTop {
			w.disorder = true
		}
		if top {
			if w.lastTop != 0 && t <= w.lastTop && !w.warn.skip() {
				if t == w.lastTop {
					w.warn.add("duplicate element " + tagString(t) + " in the top-level dataset")
				} else {
					w.warn.add("top-level elements are not in ascending tag order")
				}
			}
			if t > w.lastTop {
				w.lastTop = t
			}
			if t>>16 == 0x0002 {
				w.warn.add("file meta (group 0002) elements inside the dataset")
			}
		}

		if l == undefinedLength {
			var child frame
			switch {
			case t == tagPixelData:
				child = frame{kind: kFrags, enc: f.enc}
				if top {
					w.pixelEncaps = true
				}
			case !f.enc.explicit || vr == vrSQ:
				child = frame{kind: kSeq, enc: f.enc}
			case vr == vrUN:
				// CP-246: an undefined-length UN is a sequence whose content
				// is implicit VR little endian whatever the transfer syntax.
				w.warn.add("sequence with VR UN and undefined length read as implicit VR little endian (CP-246)")
				child = frame{kind: kSeq, enc: encImplicitLE}
			case vr == vrOB || vr == vrOW:
				w.warn.add("undefined-length OB/OW element other than pixel data read as encapsulated fragments")
				child = frame{kind: kFrags, enc: f.enc}
			default:
				return w.err(ErrCodeMalformed, t, pos, "element %s at offset %d has VR %s and undefined length", tagString(t), pos, vrString(vr))
			}
			if child.kind == kSeq {
				depth++
				if depth > w.lim.MaxDepth {
					return w.err(ErrCodeTooDeep, t, pos, "sequence %s at offset %d nests deeper than %d levels (limit MaxDepth)", tagString(t), pos, w.lim.MaxDepth)
				}
			}
			child.end, child.limit, child.tag, child.start = -1, f.limit, t, pos
			stack = append(stack, child)
			pos = vpos
			w.firstElemDone = true
			continue
		}

		if !f.enc.explicit && t&0xFFFF != 0 {
			isSQ = dictIsSQ(t)
		}
		capture := -1
		if top {
			if i := attrIndex(t); i >= 0 && !w.seen[i] {
				capture = i // a duplicate was warned about above; the first value wins
			}
		}
		switch {
		case int64(vpos)+int64(l) > int64(f.limit):
			return w.short(f, t, pos, int64(hdr), int64(l), whatElement)
		case capture >= 0:
			v, ok := w.capture(vpos, int(l), isSQ)
			if !ok {
				return w.short(f, t, pos, int64(hdr), int64(l), whatElement)
			}
			w.seen[capture], w.attrs[capture] = true, v
		case f.limit != atEOF:
			// Within a container already checked against the input.
		case isSQ:
			if !w.container(t, pos, hdr, l, whatElement) {
				return w.short(f, t, pos, int64(hdr), int64(l), whatElement)
			}
		default:
			if end := vpos + int(l); !w.need(end, end) {
				return w.short(f, t, pos, int64(hdr), int64(l), whatElement)
			}
		}
		if l%2 != 0 && !w.warn.skip() {
			w.warn.add("element " + tagString(t) + " has an odd value length")
		}
		end := vpos + int(l)
		if top && t == tagPixelData {
			w.pixelNative, w.pixelLen = true, int64(l)
		}
		w.firstElemDone = true
		if isSQ {
			depth++
			if depth > w.lim.MaxDepth {
				return w.err(ErrCodeTooDeep, t, pos, "sequence %s at offset %d nests deeper than %d levels (limit MaxDepth)", tagString(t), pos, w.lim.MaxDepth)
			}
			stack = append(stack, frame{kind: kSeq, enc: f.enc, end: end, limit: end, tag: t, start: pos})
			pos = vpos
			continue
		}
		pos = end
	}
}

func (w *walker) badVR(f *frame, t uint32, pos int, vr uint16) *Error {
	a, b := byte(vr>>8), byte(vr)
	if isUpper(a) && isUpper(b) {
		return w.err(ErrCodeMalformed, t, pos, "element %s at offset %d has unknown VR %q", tagString(t), pos, string([]byte{a, b}))
	}
	return w.err(ErrCodeMalformed, t, pos, "element %s at offset %d has no valid explicit VR (bytes 0x%02X%02X) in an %s dataset",
		tagString(t), pos, a, b, f.enc)
}

func isUpper(b byte) bool { return b >= 'A' && b <= 'Z' }

// dictIsSQ reports whether the data dictionary gives t the VR SQ: in
// implicit VR that is the only way to know a defined-length element holds
// items we must validate.
func dictIsSQ(t uint32) bool {
	if (t>>16)&1 == 1 {
		return false // private: never in the dictionary, and a miss costs an error value
	}
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	return err == nil && len(info.VRs) > 0 && info.VRs[0] == "SQ"
}

func vr2(s string) uint16 { return uint16(s[0])<<8 | uint16(s[1]) }

var (
	vrSQ = vr2("SQ")
	vrUN = vr2("UN")
	vrOB = vr2("OB")
	vrOW = vr2("OW")
)

// vrInfo reports whether vr is a standard VR and whether its explicit
// encoding has the long (reserved + 32-bit) length form.
func vrInfo(vr uint16) (long, ok bool) {
	switch string([]byte{byte(vr >> 8), byte(vr)}) {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true, true
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN",
		"SH", "SL", "SS", "ST", "TM", "UI", "UL", "US":
		return false, true
	}
	return false, false
}

func vrString(vr uint16) string { return string([]byte{byte(vr >> 8), byte(vr)}) }
