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
	Data   []byte   // normalized Part-10 bytes
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
		// The reader's error stays out of Msg: it may name a file, and
		// file names can carry patient names. errors.Unwrap has it.
		return nil, &Error{Code: ErrCodeIO, Offset: int64(len(buf)), err: err,
			Msg: "reading the input failed after " + strconv.Itoa(len(buf)) + " bytes"}
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
	switch {
	case len(data) >= 132 && string(data[128:132]) == "DICM":
		return parsePart10(data, nil, 132, lim, warn, owned)
	case len(data) >= 4 && string(data[:4]) == "DICM" && looksLikeMeta(data, 4):
		warn.add("Part-10 file without its 128-byte preamble; a zero preamble was added")
		return parsePart10(data, make([]byte, 128), 4, lim, warn, false)
	case looksLikeMeta(data, 0):
		warn.add("file meta group without preamble and DICM prefix; both were added")
		return parsePart10(data, append(make([]byte, 128), "DICM"...), 0, lim, warn, false)
	}
	return parseRaw(data, lim, warn)
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
	ts, sopClass, sopInstance  string
	haveTS, haveClass, haveIns bool
}

// parseMeta walks the file meta group (always explicit VR little endian)
// starting at start. The group's extent is found by walking group 0002
// elements rather than trusting (0002,0000): the group length is optional
// in practice and sometimes wrong; a disagreement is only a warning. The
// group length is believed over the walk only where it ends on an element
// boundary followed by group 0002 elements that are not explicit VR.
// Where an element repeats, its first value counts.
func parseMeta(data []byte, start int, lim Limits, warn *warnings) (metaInfo, *Error) {
	var m metaInfo
	pos := start
	groupEnd := int64(-1)
	n := 0
	for pos+8 <= len(data) && binary.LittleEndian.Uint16(data[pos:]) == 0x0002 {
		t := uint32(0x0002)<<16 | uint32(binary.LittleEndian.Uint16(data[pos+2:]))
		vr := uint16(data[pos+4])<<8 | uint16(data[pos+5])
		long, ok := vrInfo(vr)
		if int64(pos) == groupEnd && !ok {
			// The group length ends here and what follows is not explicit
			// VR: group 0002 elements in the dataset's own encoding (a
			// bare dataset that carried them), not meta.
			break
		}
		if !ok {
			return m, newError(ErrCodeMalformed, t, int64(pos), "file meta element %s at offset %d is not explicit VR little endian (VR bytes 0x%02X%02X)",
				tagString(t), pos, data[pos+4], data[pos+5])
		}
		hdr := 8
		var l uint32
		if long {
			hdr = 12
			if pos+12 > len(data) {
				return m, newError(ErrCodeTruncated, t, int64(pos), "file meta element header at offset %d needs 12 bytes but %d remain", pos, len(data)-pos)
			}
			l = binary.LittleEndian.Uint32(data[pos+8:])
		} else {
			l = uint32(binary.LittleEndian.Uint16(data[pos+6:]))
		}
		if l == undefinedLength {
			return m, newError(ErrCodeMalformed, t, int64(pos), "file meta element %s at offset %d has undefined length", tagString(t), pos)
		}
		if int64(pos)+int64(hdr)+int64(l) > int64(len(data)) {
			return m, newError(ErrCodeTruncated, t, int64(pos), "file meta element %s at offset %d declares %d bytes but %d remain",
				tagString(t), pos, l, len(data)-pos-hdr)
		}
		n++
		if n > lim.MaxElements {
			return m, newError(ErrCodeTooLarge, t, int64(pos), "more than %d elements (limit MaxElements)", lim.MaxElements)
		}
		v := data[pos+hdr : pos+hdr+int(l)]
		switch t {
		case 0x00020000:
			if l == 4 && pos == start {
				groupEnd = int64(pos) + 12 + int64(binary.LittleEndian.Uint32(v))
			}
		case 0x00020002:
			if !m.haveClass {
				m.sopClass, m.haveClass = string(trimPadding(v, true)), true
			}
		case 0x00020003:
			if !m.haveIns {
				m.sopInstance, m.haveIns = string(trimPadding(v, true)), true
			}
		case 0x00020010:
			if !m.haveTS {
				m.ts, m.haveTS = string(trimPadding(v, true)), true
			}
		}
		pos += hdr + int(l)
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

// parsePart10 handles an input with a file meta group starting at
// metaStart. prefix, when not nil, is what the input lacks in front of the
// meta group (a preamble, and "DICM" too if that is missing); otherwise
// the input's own preamble is zeroed.
func parsePart10(data, prefix []byte, metaStart int, lim Limits, warn *warnings, owned bool) (*Instance, *Error) {
	meta, err := parseMeta(data, metaStart, lim, warn)
	if err != nil {
		return nil, err
	}
	ts, ok := lookupTS(meta.ts)
	if !ok {
		return nil, newError(ErrCodeUnsupported, 0x00020010, int64(metaStart), "transfer syntax %s is not supported", printableUID(meta.ts))
	}

	var w *walker
	if ts.deflated {
		inflated, ierr := inflate(data[meta.end:], int64(meta.end), lim, warn)
		if ierr != nil {
			return nil, ierr
		}
		w = newWalker(inflated, lim, warn)
		w.inflatedAt = int64(meta.end)
		if werr := w.walk(0, ts.enc); werr != nil {
			return nil, werr
		}
	} else {
		w = newWalker(data, lim, warn)
		if werr := w.walk(meta.end, ts.enc); werr != nil {
			return nil, mismatch(data, meta.end, lim, ts.enc, meta.ts, werr)
		}
	}
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

// mismatch turns a walk failure into a clearer error when the dataset
// walks cleanly in another encoding than the declared one: a transfer
// syntax that lies about the encoding is a writer bug worth naming.
func mismatch(data []byte, start int, lim Limits, declared layout, tsUID string, werr *Error) *Error {
	for _, alt := range []layout{encExplicitLE, encImplicitLE, encExplicitBE} {
		if alt == declared {
			continue
		}
		w := newWalker(data, lim, &warnings{})
		if w.walk(start, alt) == nil && w.checkRequired() == nil {
			return &Error{Code: ErrCodeMalformed, Tag: werr.Tag, Offset: werr.Offset,
				Msg: "dataset does not match its transfer syntax " + printableUID(tsUID) + " (" + declared.String() +
					"): it is encoded as " + alt.String() + " (reading it as declared fails: " + werr.Msg + ")"}
		}
	}
	return werr
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
				warn.add("deflated dataset has a zlib header (PS3.5 A.5 requires raw deflate)")
				out, err = out2, err2
			}
		}
	}
	switch {
	case errors.Is(err, errInflateLimit):
		return nil, newError(ErrCodeTooLarge, 0, at, "deflated dataset at offset %d inflates to more than %d bytes (limit MaxInflated)", at, lim.MaxInflated)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, newError(ErrCodeTruncated, 0, at, "deflated dataset at offset %d ends before its deflate stream does", at)
	case err != nil:
		return nil, newError(ErrCodeMalformed, 0, at, "deflated dataset at offset %d is not a valid deflate stream (%v)", at, err)
	}
	return out, nil
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
var rawOrder = []layout{encExplicitLE, encImplicitLE, encExplicitBE}

var rawTS = map[layout]string{
	encExplicitLE: ExplicitVRLittleEndian,
	encImplicitLE: ImplicitVRLittleEndian,
	encExplicitBE: ExplicitVRBigEndian,
}

// parseRaw handles a bare dataset: its encoding is accepted only when
// exactly one candidate walks the whole dataset cleanly and yields the
// required attributes.
func parseRaw(data []byte, lim Limits, warn *warnings) (*Instance, *Error) {
	type attempt struct {
		enc  layout
		w    *walker
		werr *Error // structural failure
		rerr *Error // required attributes failure
	}
	var tries []attempt
	var good []int
	for _, enc := range rawOrder {
		w := newWalker(data, lim, &warnings{})
		a := attempt{enc: enc, w: w, werr: w.walk(0, enc)}
		if a.werr == nil {
			a.rerr = w.checkRequired()
			if a.rerr == nil {
				good = append(good, len(tries))
			}
		}
		if a.werr != nil && (a.werr.Code == ErrCodeTooDeep || a.werr.Code == ErrCodeTooLarge) && w.firstElemDone {
			// A resource limit hit after a good start is the answer.
			return nil, a.werr
		}
		tries = append(tries, a)
	}
	switch {
	case len(good) > 1:
		return nil, newError(ErrCodeMalformed, 0, 0, "bare dataset is ambiguous: it walks cleanly as both %s and %s", tries[good[0]].enc, tries[good[1]].enc)
	case len(good) == 0:
		for _, a := range tries {
			if a.werr == nil {
				return nil, a.rerr // well-formed, but not storable
			}
		}
		// Report the attempt that got furthest when it got past the
		// first element and further than any other: that is most likely
		// the real encoding, and its error the real defect.
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
			return nil, &e
		}
		msg := "bare dataset (no preamble, DICM prefix or file meta): its encoding cannot be detected:"
		for i, a := range tries {
			if i > 0 {
				msg += ";"
			}
			msg += " as " + a.enc.String() + ", " + a.werr.Msg
		}
		return nil, &Error{Code: ErrCodeMalformed, Offset: 0, Msg: msg}
	}
	a := tries[good[0]]
	// Keep the chosen walk's warnings, in front of any from parse.
	for _, m := range a.w.warn.list {
		warn.add(m)
	}
	warn.dropped += a.w.warn.dropped
	a.w.warn = warn
	return wrapDataset(a.w, data, rawTS[a.enc], a.enc.big, warn)
}

// wrapDataset finishes a bare dataset that walked cleanly: it extracts
// the attributes and puts a preamble, DICM and a meta group in front.
func wrapDataset(w *walker, data []byte, tsUID string, big bool, warn *warnings) (*Instance, *Error) {
	inst := &Instance{Raw: true, TransferSyntaxUID: tsUID}
	if err := w.fill(inst, big); err != nil {
		return nil, err
	}
	meta := encodeMeta(inst.SOPClassUID, inst.SOPInstanceUID, tsUID)
	inst.Data = make([]byte, 0, 132+len(meta)+len(data))
	inst.Data = append(inst.Data, make([]byte, 128)...)
	inst.Data = append(inst.Data, "DICM"...)
	inst.Data = append(inst.Data, meta...)
	inst.Data = append(inst.Data, data...)
	inst.Digest = sha256.Sum256(inst.Data)
	inst.Warnings = warn.result()
	return inst, nil
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
	w := newWalker(data, lim, warn)
	if ts.deflated {
		inflated, ierr := inflate(data, 0, lim, warn)
		if ierr != nil {
			return nil, ierr
		}
		w = newWalker(inflated, lim, warn)
		w.inflatedAt = 0
	}
	if werr := w.walk(0, ts.enc); werr != nil {
		if ts.deflated {
			return nil, werr
		}
		return nil, mismatch(data, 0, lim, ts.enc, tsUID, werr)
	}
	if err := w.checkRequired(); err != nil {
		return nil, err
	}
	return wrapDataset(w, data, tsUID, ts.enc.big, warn)
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
