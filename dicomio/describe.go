package dicomio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Range is a byte range in the instance's bytes (for a deflated
// instance, in [Description.Inflated]).
type Range struct{ Off, Len int64 }

// Description is what WADO-RS serves of a stored instance without
// holding its pixel data: the whole data set for the JSON model, with
// large binary values and the pixel data left where they are and
// described by byte ranges.
type Description struct {
	TransferSyntax string
	// Dataset is the data set (not the file meta group): every element,
	// private ones included, sequences as Items, in ascending tag order
	// (where the input repeats a tag, its first element counts, as in
	// Parse). Values are little endian whatever the transfer syntax.
	Dataset Dataset
	// Bulk holds the top-level elements whose value was left out of
	// Dataset: binary VRs (OB OD OF OL OV OW UN) longer than bulkMin,
	// and Pixel Data always. Such an element stays in Dataset with Value
	// nil and BulkLen set. The bytes are as stored: big endian in an
	// explicit VR big endian instance ([Description.BulkValue] swaps),
	// and for encapsulated Pixel Data the whole encoded value (items and
	// delimiter included).
	Bulk map[uint32]Range
	// Pixel is nil when the instance has no Pixel Data (7FE0,0010).
	Pixel *PixelData
	// Inflated is the inflated data set of a deflated instance; its
	// Bulk and Frames ranges index Inflated, not the instance's bytes.
	// Nil for every other transfer syntax.
	Inflated []byte

	big bool
}

// PixelData describes the pixel data of an instance: the attributes
// needed to interpret it and where each frame's bytes are.
type PixelData struct {
	Encapsulated                                                                                                 bool
	Rows, Columns, SamplesPerPixel, BitsAllocated, BitsStored, HighBit, PixelRepresentation, PlanarConfiguration int
	// NumberOfFrames is the number of frames found (1 when the data set
	// does not say; what the offset tables or fragments say when its
	// value is not a valid IS).
	NumberOfFrames                 int
	Photometric                    string
	RescaleSlope, RescaleIntercept float64 // 1, 0 when absent
	WindowCenter, WindowWidth      []float64
	VOILUTFunction                 string // (0028,1056), "" when absent
	// Frames holds, per frame, its bytes: one range for native pixel
	// data (for BitsAllocated 1, the bytes that hold the frame's bits);
	// for encapsulated pixel data the contents of that frame's fragments
	// (item headers excluded), found from the Extended Offset Table
	// (7FE0,0001/0002), the Basic Offset Table, a single frame (all
	// fragments), one fragment per frame, or fragments that start with
	// the codec's start-of-image marker, in that order. Frames is nil
	// when the pixel data cannot be cut into NumberOfFrames frames
	// (shorter than the attributes say, or fragments that fit no rule).
	Frames [][]Range
}

// maxFrames bounds the frames Describe lists: a hostile Number of
// Frames over tiny frames must not cost gigabytes of ranges.
const maxFrames = 1 << 20

// Tags Describe reads.
const (
	tagExtendedOffsetTable        uint32 = 0x7FE00001
	tagExtendedOffsetTableLengths uint32 = 0x7FE00002
)

// Describe reads a stored Part-10 instance (what [Parse] leaves in
// Instance.Data, in any transfer syntax Parse accepts) into its data set
// for the DICOM JSON model, with top-level binary values longer than
// bulkMin bytes and Pixel Data left out as byte ranges. It never panics;
// its errors name tags and offsets, never values. Its bounds are Parse's
// defaults: nesting depth, element count, and the inflated size of a
// deflated data set.
func Describe(b []byte, bulkMin int) (d *Description, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg := "describe instance: internal error (recovered panic)"
			if re, ok := r.(runtime.Error); ok {
				msg += ": " + re.Error()
			}
			d, err = nil, errors.New(msg)
		}
	}()
	lim := DefaultLimits()
	start, tsUID, err := describeMeta(b)
	if err != nil {
		return nil, err
	}
	ts, ok := lookupTS(tsUID)
	if !ok {
		return nil, fmt.Errorf("describe instance: transfer syntax %s is not supported", printableUID(tsUID))
	}
	d = &Description{TransferSyntax: tsUID, Bulk: map[uint32]Range{}, big: ts.enc.big}
	src := b
	if ts.deflated {
		inflated, ierr := inflate(b[start:], int64(start), lim, &warnings{})
		if ierr != nil {
			return nil, fmt.Errorf("describe instance: %s", ierr.Msg)
		}
		d.Inflated, src, start = inflated, inflated, 0
	}
	z := &describer{pixelAt: -1, src: src, maxElems: lim.MaxElements, maxDepth: lim.MaxDepth, bulkMin: max(bulkMin, 0), d: d}
	ds, _, err := z.dataset(start, len(src), ts.enc, 0, true, false)
	if err != nil {
		return nil, fmt.Errorf("describe instance: %w", err)
	}
	d.Dataset = ds
	z.resolveXS()
	if z.pixelAt >= 0 {
		d.Pixel = z.pixel()
	}
	return d, nil
}

// describeMeta walks the file meta group (explicit VR little endian) of
// a Part-10 file and returns where the data set starts and its transfer
// syntax. As in Parse, the group's extent is what its elements cover,
// except that the group length is believed where it ends just before
// group 0002 elements that are not explicit VR.
func describeMeta(b []byte) (int, string, error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return 0, "", errors.New("describe instance: not a Part-10 file (no DICM prefix at offset 128)")
	}
	p, groupEnd := 132, -1
	ts := ""
	haveTS := false
	for p+8 <= len(b) && binary.LittleEndian.Uint16(b[p:]) == 0x0002 {
		el := binary.LittleEndian.Uint16(b[p+2:])
		long, ok := vrInfo(uint16(b[p+4])<<8 | uint16(b[p+5]))
		if !ok {
			if p == groupEnd {
				break
			}
			return 0, "", fmt.Errorf("describe instance: file meta element (0002,%04X) at offset %d is not explicit VR", el, p)
		}
		hdr, n := 8, int64(binary.LittleEndian.Uint16(b[p+6:]))
		if long {
			if p+12 > len(b) {
				return 0, "", fmt.Errorf("describe instance: file meta truncated at offset %d", p)
			}
			hdr, n = 12, int64(binary.LittleEndian.Uint32(b[p+8:]))
		}
		if int64(p+hdr)+n > int64(len(b)) {
			return 0, "", fmt.Errorf("describe instance: file meta element (0002,%04X) at offset %d declares %d bytes; %d remain", el, p, n, len(b)-p-hdr)
		}
		v := b[p+hdr : p+hdr+int(n)]
		switch {
		case el == 0x0000 && n == 4 && p == 132:
			groupEnd = p + 12 + int(min(binary.LittleEndian.Uint32(v), math.MaxInt32))
		case el == 0x0010 && !haveTS:
			ts, haveTS = string(trimPadding(v, true)), true
		}
		p += hdr + int(n)
	}
	if ts == "" {
		return 0, "", errors.New("describe instance: file meta lacks Transfer Syntax UID (0002,0010)")
	}
	return p, ts, nil
}

type describer struct {
	src                []byte
	n                  int
	maxElems, maxDepth int
	bulkMin            int
	d                  *Description

	pixelAt    int     // offset of the top-level Pixel Data header, -1 when none
	pixelEncap bool    // encapsulated
	pixelVal   Range   // its value (for encapsulated, from the first item to past the delimiter)
	frags      []Range // encapsulated: each item's contents, the Basic Offset Table first
	fragAt     []int64 // encapsulated: the offset of each item's header
	xs         []uint32
}

func tagStr(t uint32) string { return fmt.Sprintf("(%04X,%04X)", t>>16, t&0xFFFF) }

// dataset reads elements from pos until end (the end of the data or of
// a defined-length item), or, for an undefined-length item (untilDelim),
// its item delimiter; it returns the position after what it read.
func (z *describer) dataset(pos, end int, enc layout, depth int, top, untilDelim bool) (Dataset, int, error) {
	src, big := z.src, enc.big
	var ds Dataset
	sorted := true
	for {
		if pos >= end {
			if untilDelim {
				return nil, 0, fmt.Errorf("item ends at offset %d without its delimitation item", pos)
			}
			return finishDataset(ds, sorted), pos, nil
		}
		if end-pos < 8 {
			if top && allZero(src[pos:end]) {
				return finishDataset(ds, sorted), end, nil
			}
			return nil, 0, fmt.Errorf("element header at offset %d needs 8 bytes; %d remain", pos, end-pos)
		}
		t := tagOf(src[pos:], big)
		if t>>16 == 0xFFFE {
			switch {
			case t == tagItemDelim && untilDelim:
				return finishDataset(ds, sorted), pos + 8, nil
			case t == tagSeqDelim && top:
				pos += 8 // stray; Parse warns and goes on
				continue
			}
			return nil, 0, fmt.Errorf("unexpected %s at offset %d", tagStr(t), pos)
		}
		if top && t == 0 && allZero(src[pos:end]) {
			return finishDataset(ds, sorted), end, nil
		}
		if z.n++; z.n > z.maxElems {
			return nil, 0, fmt.Errorf("more than %d elements", z.maxElems)
		}
		hdr, vr := 8, ""
		var l uint32
		if enc.explicit {
			v := uint16(src[pos+4])<<8 | uint16(src[pos+5])
			long, ok := vrInfo(v)
			if !ok {
				return nil, 0, fmt.Errorf("element %s at offset %d has no valid VR", tagStr(t), pos)
			}
			vr = vrString(v)
			if long {
				if end-pos < 12 {
					return nil, 0, fmt.Errorf("element header at offset %d needs 12 bytes; %d remain", pos, end-pos)
				}
				hdr, l = 12, u32(src[pos+8:], big)
			} else {
				l = uint32(u16(src[pos+6:], big))
			}
		} else {
			vr = z.implicitVR(t, top)
			l = u32(src[pos+4:], big)
		}
		vpos := pos + hdr
		el := Element{Tag: t, VR: vr}
		if len(ds) > 0 && t <= ds[len(ds)-1].Tag {
			sorted = false
		}

		if l == undefinedLength {
			switch {
			case t == tagPixelData || (enc.explicit && (vr == "OB" || vr == "OW")):
				if t == tagPixelData {
					el.VR = "OB"
				}
				frags, at, next, err := z.fragments(vpos, end, big)
				if err != nil {
					return nil, 0, err
				}
				if top && t == tagPixelData && z.pixelAt < 0 {
					z.pixelAt, z.pixelEncap, z.frags, z.fragAt = pos, true, frags, at
					z.pixelVal = Range{int64(vpos), int64(next - vpos)}
				}
				z.setValue(&el, vpos, next-vpos, top, enc)
				ds, pos = append(ds, el), next
				continue
			case !enc.explicit || vr == "SQ" || vr == "UN":
				inner := enc
				if enc.explicit && vr == "UN" {
					inner = encImplicitLE // CP-246
				}
				if depth+1 > z.maxDepth {
					return nil, 0, fmt.Errorf("sequence %s at offset %d nests deeper than %d levels", tagStr(t), pos, z.maxDepth)
				}
				items, next, err := z.items(vpos, end, inner, depth+1, true)
				if err != nil {
					return nil, 0, err
				}
				el.VR, el.Items = "SQ", items
				ds, pos = append(ds, el), next
				continue
			}
			return nil, 0, fmt.Errorf("element %s at offset %d has VR %s and undefined length", tagStr(t), pos, vr)
		}
		if int64(vpos)+int64(l) > int64(end) {
			return nil, 0, fmt.Errorf("element %s at offset %d declares %d bytes; %d remain", tagStr(t), pos, l, end-vpos)
		}
		next := vpos + int(l)
		isSQ := vr == "SQ" || (!enc.explicit && t&0xFFFF != 0 && dictIsSQ(t))
		if isSQ {
			if depth+1 > z.maxDepth {
				return nil, 0, fmt.Errorf("sequence %s at offset %d nests deeper than %d levels", tagStr(t), pos, z.maxDepth)
			}
			items, _, err := z.items(vpos, next, enc, depth+1, false)
			if err != nil {
				return nil, 0, err
			}
			el.VR, el.Items = "SQ", items
			ds, pos = append(ds, el), next
			continue
		}
		if vr == "UN" && !big {
			if known, items := z.unknownVR(t, vpos, next, depth); known != "" {
				el.VR, el.Items = known, items
				if known == "SQ" {
					ds, pos = append(ds, el), next
					continue
				}
				if top && (known == "US" || known == "SS") && dictXS(t) {
					z.xs = append(z.xs, t)
				}
			}
		}
		if top && t == tagPixelData && z.pixelAt < 0 {
			z.pixelAt, z.pixelVal = pos, Range{int64(vpos), int64(l)}
		}
		z.setValue(&el, vpos, int(l), top, enc)
		ds, pos = append(ds, el), next
	}
}

// setValue gives el the n bytes at vpos: in Dataset (a copy, little
// endian), or, for top-level Pixel Data and long binary values, as a
// range in Bulk.
func (z *describer) setValue(el *Element, vpos, n int, top bool, enc layout) {
	if top && n > 0 && (el.Tag == tagPixelData || (binaryVR(el.VR) && n > z.bulkMin)) {
		if _, dup := z.d.Bulk[el.Tag]; !dup {
			z.d.Bulk[el.Tag] = Range{int64(vpos), int64(n)}
		}
		el.BulkLen = int64(n)
		return
	}
	el.Value = make([]byte, n)
	copy(el.Value, z.src[vpos:vpos+n])
	if enc.big {
		swap(el.VR, el.Value)
	}
}

func binaryVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		return true
	}
	return false
}

// items reads a sequence's items from pos until end, or, for an
// undefined-length sequence, its delimiter.
func (z *describer) items(pos, end int, enc layout, depth int, untilDelim bool) ([]Dataset, int, error) {
	src, big := z.src, enc.big
	items := []Dataset{}
	for {
		if !untilDelim && pos == end {
			return items, pos, nil
		}
		if end-pos < 8 {
			if untilDelim && pos >= end {
				return nil, 0, fmt.Errorf("sequence ends at offset %d without its delimitation item", pos)
			}
			return nil, 0, fmt.Errorf("item header at offset %d needs 8 bytes; %d remain", pos, end-pos)
		}
		t, l := tagOf(src[pos:], big), u32(src[pos+4:], big)
		switch t {
		case tagSeqDelim:
			if !untilDelim {
				return nil, 0, fmt.Errorf("sequence delimitation item at offset %d in a sequence of defined length", pos)
			}
			return items, pos + 8, nil
		case tagItem:
		default:
			return nil, 0, fmt.Errorf("%s at offset %d where a sequence item belongs", tagStr(t), pos)
		}
		if z.n++; z.n > z.maxElems {
			return nil, 0, fmt.Errorf("more than %d elements", z.maxElems)
		}
		var item Dataset
		var err error
		if l == undefinedLength {
			item, pos, err = z.dataset(pos+8, end, enc, depth, false, true)
		} else {
			if int64(pos)+8+int64(l) > int64(end) {
				return nil, 0, fmt.Errorf("item at offset %d declares %d bytes; %d remain", pos, l, end-pos-8)
			}
			item, pos, err = z.dataset(pos+8, pos+8+int(l), enc, depth, false, false)
		}
		if err != nil {
			return nil, 0, err
		}
		if item == nil {
			item = Dataset{}
		}
		items = append(items, item)
	}
}

// fragments reads the items of an encapsulated value up to its sequence
// delimiter: their contents and header offsets, and the position after
// the delimiter.
func (z *describer) fragments(pos, end int, big bool) ([]Range, []int64, int, error) {
	var frags []Range
	var at []int64
	src := z.src
	for {
		if end-pos < 8 {
			return nil, nil, 0, fmt.Errorf("encapsulated value ends at offset %d without its sequence delimitation item", pos)
		}
		t, l := tagOf(src[pos:], big), u32(src[pos+4:], big)
		switch t {
		case tagSeqDelim:
			return frags, at, pos + 8, nil
		case tagItem:
		default:
			return nil, nil, 0, fmt.Errorf("%s at offset %d where a pixel data fragment belongs", tagStr(t), pos)
		}
		if l == undefinedLength {
			return nil, nil, 0, fmt.Errorf("pixel data fragment at offset %d has undefined length", pos)
		}
		if int64(pos)+8+int64(l) > int64(end) {
			return nil, nil, 0, fmt.Errorf("pixel data fragment at offset %d declares %d bytes; %d remain", pos, l, end-pos-8)
		}
		if z.n++; z.n > z.maxElems {
			return nil, nil, 0, fmt.Errorf("more than %d elements", z.maxElems)
		}
		frags = append(frags, Range{int64(pos + 8), int64(l)})
		at = append(at, int64(pos))
		pos += 8 + int(l)
	}
}

// implicitVR is the VR of t in an implicit VR data set: the dictionary's,
// with OW where it allows OB or OW (PS3.5 A.1: those are OW in implicit
// VR) and US where it allows US or SS (settled by resolveXS); LO for
// private creators, UN for other private and unknown tags.
func (z *describer) implicitVR(t uint32, top bool) string {
	if (t>>16)&1 == 1 && t&0xFFFF >= 0x10 && t&0xFFFF <= 0xFF {
		return "LO" // a private creator (PS3.5 7.8.1)
	}
	if dictOBOW(t) {
		return "OW"
	}
	if top && dictXS(t) {
		z.xs = append(z.xs, t)
	}
	return implicitVR(t)
}

// unknownVR gives an explicit VR UN element of a little endian data set
// the dictionary's VR, as PS3.5 6.2.2 allows (a UN value is encoded as in
// implicit VR little endian): viewers read Rows from a number, not from
// base64. A value the dictionary calls a sequence is read as implicit VR
// items; where that fails, or the tag is private or unknown, it stays UN.
func (z *describer) unknownVR(t uint32, vpos, end, depth int) (string, []Dataset) {
	if (t>>16)&1 == 1 || t&0xFFFF == 0 {
		return "", nil
	}
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	if err != nil || len(info.VRs) == 0 {
		return "", nil
	}
	if info.VRs[0] == "SQ" {
		if depth+1 > z.maxDepth {
			return "", nil
		}
		n := z.n
		items, _, err := z.items(vpos, end, encImplicitLE, depth+1, false)
		if err != nil {
			z.n = n
			return "", nil
		}
		return "SQ", items
	}
	if dictOBOW(t) {
		return "OW", nil
	}
	if vr := implicitVR(t); vr != "UN" {
		return vr, nil
	}
	return "", nil
}

func dictVRs(t uint32) []string {
	if (t>>16)&1 == 1 {
		return nil
	}
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	if err != nil {
		return nil
	}
	return info.VRs
}

func dictOBOW(t uint32) bool {
	v := dictVRs(t)
	return len(v) == 2 && (v[0] == "OB" && v[1] == "OW" || v[0] == "OW" && v[1] == "OB")
}

func dictXS(t uint32) bool {
	v := dictVRs(t)
	return len(v) >= 2 && v[0] == "US" && v[1] == "SS"
}

// resolveXS gives the top-level elements whose VR is US or SS by the
// dictionary the VR SS when Pixel Representation says pixels are signed.
func (z *describer) resolveXS() {
	if len(z.xs) == 0 || intValue(z.d.Dataset.Find(0x00280103)) != 1 {
		return
	}
	for _, t := range z.xs {
		if el := z.d.Dataset.Find(t); el != nil && el.VR == "US" {
			el.VR = "SS"
		}
	}
}

// finishDataset puts ds in ascending tag order (stable, so that of
// repeated tags the first comes first) and drops repeats.
func finishDataset(ds Dataset, sorted bool) Dataset {
	if ds == nil {
		return Dataset{}
	}
	if sorted {
		return ds
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Tag < ds[j].Tag })
	out := ds[:1]
	for _, el := range ds[1:] {
		if el.Tag != out[len(out)-1].Tag {
			out = append(out, el)
		}
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// intValue reads a US, SS, UL, SL or IS element (0 when absent or
// unreadable; -1 for an IS that is not a number).
func intValue(el *Element) int {
	if el == nil {
		return 0
	}
	v := el.Value
	switch el.VR {
	case "IS", "DS":
		s := strings.TrimSpace(strings.TrimRight(string(v), "\x00"))
		if i := strings.IndexByte(s, '\\'); i >= 0 {
			s = s[:i]
		}
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(s), "+"))
		if err != nil {
			return -1
		}
		return n
	case "SS":
		if len(v) >= 2 {
			return int(int16(binary.LittleEndian.Uint16(v)))
		}
	case "UL":
		if len(v) >= 4 {
			return int(min(binary.LittleEndian.Uint32(v), math.MaxInt32))
		}
	case "SL":
		if len(v) >= 4 {
			return int(int32(binary.LittleEndian.Uint32(v)))
		}
	default:
		if len(v) >= 2 {
			return int(binary.LittleEndian.Uint16(v))
		}
	}
	return 0
}

// floats reads the values of a DS (or FD/FL) element.
func floats(el *Element) []float64 {
	if el == nil {
		return nil
	}
	var out []float64
	switch el.VR {
	case "FD":
		for i := 0; i+8 <= len(el.Value); i += 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(el.Value[i:])))
		}
		return out
	case "FL":
		for i := 0; i+4 <= len(el.Value); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(el.Value[i:]))))
		}
		return out
	}
	for _, p := range strings.Split(strings.TrimRight(string(el.Value), "\x00 "), `\`) {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		out = append(out, f)
	}
	return out
}

// pixel describes the top-level Pixel Data found by the walk.
func (z *describer) pixel() *PixelData {
	ds := z.d.Dataset
	p := &PixelData{
		Encapsulated:        z.pixelEncap,
		Rows:                intValue(ds.Find(0x00280010)),
		Columns:             intValue(ds.Find(0x00280011)),
		SamplesPerPixel:     intValue(ds.Find(0x00280002)),
		BitsAllocated:       intValue(ds.Find(0x00280100)),
		BitsStored:          intValue(ds.Find(0x00280101)),
		HighBit:             intValue(ds.Find(0x00280102)),
		PixelRepresentation: intValue(ds.Find(0x00280103)),
		PlanarConfiguration: intValue(ds.Find(0x00280006)),
		Photometric:         ds.String(0x00280004),
		VOILUTFunction:      ds.String(0x00281056),
		RescaleSlope:        1,
		WindowCenter:        floats(ds.Find(0x00281050)),
		WindowWidth:         floats(ds.Find(0x00281051)),
	}
	if p.SamplesPerPixel == 0 {
		p.SamplesPerPixel = 1
	}
	if p.BitsStored == 0 {
		p.BitsStored = p.BitsAllocated
	}
	if p.HighBit == 0 && p.BitsStored > 1 {
		p.HighBit = p.BitsStored - 1
	}
	if f := floats(ds.Find(0x00281053)); len(f) > 0 && f[0] != 0 {
		p.RescaleSlope = f[0]
	}
	if f := floats(ds.Find(0x00281052)); len(f) > 0 {
		p.RescaleIntercept = f[0]
	}
	nf := 1 // absent
	if el := ds.Find(0x00280008); el != nil {
		nf = intValue(el)
		if nf <= 0 {
			nf = -1 // present but not a usable count
		}
	}
	if p.Encapsulated {
		p.Frames = z.encapsulatedFrames(nf)
	} else {
		p.Frames = z.nativeFrames(p, nf)
	}
	switch {
	case p.Frames != nil:
		p.NumberOfFrames = len(p.Frames)
	case nf > 0:
		p.NumberOfFrames = nf
	default:
		p.NumberOfFrames = 1
	}
	return p
}

func (z *describer) nativeFrames(p *PixelData, nf int) [][]Range {
	if p.Rows <= 0 || p.Columns <= 0 || p.SamplesPerPixel <= 0 || p.BitsAllocated <= 0 || p.SamplesPerPixel > 4 || p.BitsAllocated > 64 {
		return nil
	}
	bits := int64(p.Rows) * int64(p.Columns) * int64(p.SamplesPerPixel) * int64(p.BitsAllocated)
	have := z.pixelVal.Len * 8
	if nf < 0 { // an unusable Number of Frames: what the value holds
		nf = int(have / bits)
		if nf == 0 {
			return nil
		}
	}
	if int64(nf) > have/bits || nf > maxFrames {
		return nil
	}
	frames, ranges := make([][]Range, nf), make([]Range, nf)
	for i := range frames {
		from, to := int64(i)*bits/8, (int64(i+1)*bits+7)/8
		ranges[i] = Range{z.pixelVal.Off + from, to - from}
		frames[i] = ranges[i : i+1 : i+1]
	}
	return frames
}

func (z *describer) encapsulatedFrames(nf int) [][]Range {
	if len(z.frags) == 0 {
		return nil
	}
	bot, data, at := z.frags[0], z.frags[1:], z.fragAt[1:]
	if len(data) == 0 {
		return nil
	}
	if offs := z.offsetTable(bot); offs != nil && (nf < 0 || len(offs) == nf) {
		if frames := framesAt(data, at, offs); frames != nil {
			return frames
		}
	}
	switch {
	case nf == 1:
		return [][]Range{append([]Range(nil), data...)}
	case nf == len(data):
		frames := make([][]Range, nf)
		for i := range data {
			frames[i] = data[i : i+1 : i+1]
		}
		return frames
	}
	// Fragments without an offset table: a new frame begins where a
	// fragment begins with the codec's start marker (JPEG and JPEG-LS
	// SOI, JPEG 2000 SOC).
	var starts []int
	for i, f := range data {
		if f.Len >= 2 && isStartMarker(z.src[f.Off], z.src[f.Off+1]) {
			starts = append(starts, i)
		}
	}
	if len(starts) == 0 || starts[0] != 0 || (nf > 0 && len(starts) != nf) {
		return nil
	}
	frames := make([][]Range, len(starts))
	for i, s := range starts {
		e := len(data)
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		frames[i] = append([]Range(nil), data[s:e]...)
	}
	return frames
}

func isStartMarker(a, b byte) bool { return a == 0xFF && (b == 0xD8 || b == 0x4F) }

// offsetTable is the frames' offsets from the Extended Offset Table, or
// else the Basic Offset Table; nil when neither has any.
func (z *describer) offsetTable(bot Range) []uint64 {
	ds := z.d.Dataset
	if eot := ds.Find(tagExtendedOffsetTable); eot != nil {
		v := eot.Value
		if r, ok := z.d.Bulk[tagExtendedOffsetTable]; ok && eot.BulkLen > 0 {
			v = z.src[r.Off : r.Off+r.Len]
		}
		if len(v) >= 8 && len(v)%8 == 0 {
			offs := make([]uint64, len(v)/8)
			for i := range offs {
				offs[i] = binary.LittleEndian.Uint64(v[8*i:])
			}
			return offs
		}
	}
	if bot.Len >= 4 && bot.Len%4 == 0 {
		b := z.src[bot.Off : bot.Off+bot.Len]
		offs := make([]uint64, len(b)/4)
		for i := range offs {
			offs[i] = uint64(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return offs
	}
	return nil
}

// framesAt groups fragments into frames by the frames' offsets, which
// count from the first fragment's item header; nil when an offset is not
// where a fragment starts or the offsets do not increase from 0.
func framesAt(data []Range, at []int64, offs []uint64) [][]Range {
	base := at[0]
	idx := make([]int, len(offs))
	for i, o := range offs {
		if o > uint64(math.MaxInt64-base) {
			return nil
		}
		want := base + int64(o)
		j := sort.Search(len(at), func(k int) bool { return at[k] >= want })
		if j == len(at) || at[j] != want || (i == 0 && j != 0) || (i > 0 && j <= idx[i-1]) {
			return nil
		}
		idx[i] = j
	}
	frames := make([][]Range, len(offs))
	for i, j := range idx {
		e := len(data)
		if i+1 < len(idx) {
			e = idx[i+1]
		}
		frames[i] = append([]Range(nil), data[j:e]...)
	}
	return frames
}

// Bytes returns the bytes r covers: in b, the instance's bytes, or in
// Inflated for a deflated instance; nil when r lies outside them.
func (d *Description) Bytes(b []byte, r Range) []byte {
	src := b
	if d.Inflated != nil {
		src = d.Inflated
	}
	if r.Off < 0 || r.Len < 0 || r.Off > int64(len(src)) || r.Len > int64(len(src))-r.Off {
		return nil
	}
	return src[r.Off : r.Off+r.Len]
}

// BulkValue returns the value of the top-level element t that Describe
// left in Bulk, little endian (a copy swapped from a big endian
// instance; otherwise a slice of b or Inflated).
func (d *Description) BulkValue(b []byte, t uint32) ([]byte, error) {
	r, ok := d.Bulk[t]
	if !ok {
		return nil, fmt.Errorf("read bulk value: element %s has no bulk value", tagStr(t))
	}
	v := d.Bytes(b, r)
	if v == nil {
		return nil, fmt.Errorf("read bulk value: element %s lies outside the instance", tagStr(t))
	}
	if d.big {
		if el := d.Dataset.Find(t); el != nil {
			v = append([]byte(nil), v...)
			swap(el.VR, v)
		}
	}
	return v, nil
}

// FrameData returns frame n (1-based) as WADO-RS serves it: a native
// frame's bytes, little endian; an encapsulated frame's fragments joined
// (the compressed stream without item headers). It is a slice of b (or
// Inflated) where it can be, a copy otherwise.
func (d *Description) FrameData(b []byte, n int) ([]byte, error) {
	p := d.Pixel
	if p == nil {
		return nil, errors.New("read frame: the instance has no pixel data")
	}
	if p.Frames == nil {
		return nil, errors.New("read frame: the pixel data cannot be cut into frames")
	}
	if n < 1 || n > len(p.Frames) {
		return nil, fmt.Errorf("read frame: frame %d is not in 1..%d", n, len(p.Frames))
	}
	rs := p.Frames[n-1]
	if len(rs) == 1 && !(d.big && !p.Encapsulated) {
		if v := d.Bytes(b, rs[0]); v != nil {
			return v, nil
		}
		return nil, fmt.Errorf("read frame: frame %d lies outside the instance", n)
	}
	var total int64
	for _, r := range rs {
		total += r.Len
	}
	if len(rs) == 1 {
		// A native frame of a big endian instance: OW words are swapped
		// counting from where the value starts, so the copy starts on a
		// word boundary and takes the whole last word where there is one.
		r, pv := rs[0], d.Bulk[tagPixelData]
		lead := (r.Off - pv.Off) % 2
		end := min(r.Off+r.Len+(r.Off+r.Len-pv.Off)%2, pv.Off+pv.Len)
		raw := d.Bytes(b, Range{r.Off - lead, end - (r.Off - lead)})
		if raw == nil || int64(len(raw)) < lead+r.Len {
			return nil, fmt.Errorf("read frame: frame %d lies outside the instance", n)
		}
		out := append([]byte(nil), raw...)
		if el := d.Dataset.Find(tagPixelData); el != nil {
			swap(el.VR, out)
		}
		return out[lead : lead+r.Len], nil
	}
	out := make([]byte, 0, total)
	for _, r := range rs {
		v := d.Bytes(b, r)
		if v == nil {
			return nil, fmt.Errorf("read frame: frame %d lies outside the instance", n)
		}
		out = append(out, v...)
	}
	return out, nil
}
