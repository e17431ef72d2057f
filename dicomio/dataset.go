package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Element is one data element of a small data set (a query identifier or
// its answer). Values are held as little endian; sequences as items.
type Element struct {
	Tag   uint32
	VR    string
	Value []byte
	Items []Dataset // VR SQ
	// BulkLen is the length of a value left out of the data set (Value
	// nil) and served apart, as [Describe] does for pixel data and long
	// binary values; 0 for every value held in Value.
	BulkLen int64
}

// Dataset is a small data set: a C-FIND or C-MOVE/C-GET identifier, a
// C-FIND answer, a storage commitment request. Elements are kept in
// ascending tag order.
type Dataset []Element

// Bounds on identifiers: they are a few dozen keys.
const (
	MaxIdentifier    = 64 << 10
	maxElements      = 4096
	maxSequenceDepth = 4
)

type codec struct {
	explicit, big bool
}

func codecOf(ts string) (c codec, deflated bool, err error) {
	switch ts {
	case ImplicitVRLittleEndian:
		return codec{}, false, nil
	case ExplicitVRBigEndian:
		return codec{explicit: true, big: true}, false, nil
	case DeflatedExplicitVRLittleEndian:
		return codec{explicit: true}, true, nil
	}
	if !KnownTransferSyntax(ts) {
		return codec{}, false, fmt.Errorf("transfer syntax %s is not supported for identifiers", ts)
	}
	return codec{explicit: true}, false, nil // every other one is explicit VR little endian
}

// DecodeDataset decodes a small data set in transfer syntax ts, at most
// MaxIdentifier bytes (inflated, for the deflated syntax).
func DecodeDataset(b []byte, ts string) (Dataset, error) {
	c, deflated, err := codecOf(ts)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxIdentifier {
		return nil, fmt.Errorf("identifier of %d bytes is over the %d-byte limit", len(b), MaxIdentifier)
	}
	if deflated {
		r := flate.NewReader(bytes.NewReader(b))
		inflated, err := io.ReadAll(io.LimitReader(r, MaxIdentifier+1))
		if err != nil {
			return nil, fmt.Errorf("inflate identifier: %w", err)
		}
		if len(inflated) > MaxIdentifier {
			return nil, fmt.Errorf("identifier inflates beyond %d bytes", MaxIdentifier)
		}
		b = inflated
	}
	d := &decoder{c: c}
	ds, rest, err := d.dataset(b, 0, false)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("identifier has bytes after its last element")
	}
	return ds, nil
}

type decoder struct {
	c     codec
	count int
}

func (d *decoder) u16(b []byte) uint16 {
	if d.c.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (d *decoder) u32(b []byte) uint32 {
	if d.c.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// dataset reads elements until b ends or, inItem with undefined length,
// an item delimiter; it returns what follows.
func (d *decoder) dataset(b []byte, depth int, untilDelim bool) (Dataset, []byte, error) {
	var ds Dataset
	last := int64(-1)
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, nil, errors.New("identifier truncated in an element header")
		}
		t := uint32(d.u16(b))<<16 | uint32(d.u16(b[2:]))
		if t == tagItemDelim {
			if !untilDelim {
				return nil, nil, errors.New("item delimiter outside an item")
			}
			return ds, b[8:], nil
		}
		if t == tagItem || t == tagSeqDelim {
			return nil, nil, fmt.Errorf("unexpected delimiter (FFFE,%04X)", t&0xFFFF)
		}
		if int64(t) <= last {
			return nil, nil, fmt.Errorf("element (%04X,%04X) is out of ascending order", t>>16, t&0xFFFF)
		}
		last = int64(t)
		d.count++
		if d.count > maxElements {
			return nil, nil, fmt.Errorf("identifier has more than %d elements", maxElements)
		}
		var vr string
		var n uint32
		if d.c.explicit {
			vr = string(b[4:6])
			if !validVR(vr) {
				return nil, nil, fmt.Errorf("element (%04X,%04X) has an unknown VR", t>>16, t&0xFFFF)
			}
			if longVR(vr) {
				if len(b) < 12 {
					return nil, nil, errors.New("identifier truncated in an element header")
				}
				n = d.u32(b[8:])
				b = b[12:]
			} else {
				n = uint32(d.u16(b[6:]))
				b = b[8:]
			}
		} else {
			vr = implicitVR(t)
			n = d.u32(b[4:])
			b = b[8:]
		}
		el := Element{Tag: t, VR: vr}
		if vr == "SQ" || (vr == "UN" && n == undefinedLength) {
			if depth >= maxSequenceDepth {
				return nil, nil, fmt.Errorf("sequences nested deeper than %d", maxSequenceDepth)
			}
			el.VR = "SQ"
			var body []byte
			defined := n != undefinedLength
			if defined {
				if uint64(n) > uint64(len(b)) {
					return nil, nil, fmt.Errorf("sequence (%04X,%04X) declares %d bytes; %d remain", t>>16, t&0xFFFF, n, len(b))
				}
				body, b = b[:n], b[n:]
			} else {
				body = b
			}
			items, rest, err := d.items(body, depth+1, !defined)
			if err != nil {
				return nil, nil, err
			}
			if defined {
				if len(rest) != 0 {
					return nil, nil, errors.New("sequence has bytes after its last item")
				}
			} else {
				b = rest
			}
			el.Items = items
			ds = append(ds, el)
			continue
		}
		if n == undefinedLength {
			return nil, nil, fmt.Errorf("element (%04X,%04X) has an undefined length", t>>16, t&0xFFFF)
		}
		if uint64(n) > uint64(len(b)) {
			return nil, nil, fmt.Errorf("element (%04X,%04X) declares %d bytes; %d remain", t>>16, t&0xFFFF, n, len(b))
		}
		el.Value = append([]byte(nil), b[:n]...)
		if d.c.big {
			swap(el.VR, el.Value)
		}
		b = b[n:]
		ds = append(ds, el)
	}
	if untilDelim {
		return nil, nil, errors.New("item without its delimiter")
	}
	return ds, nil, nil
}

func (d *decoder) items(b []byte, depth int, untilDelim bool) ([]Dataset, []byte, error) {
	var items []Dataset
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, nil, errors.New("identifier truncated in an item header")
		}
		t := uint32(d.u16(b))<<16 | uint32(d.u16(b[2:]))
		n := d.u32(b[4:])
		b = b[8:]
		if t == tagSeqDelim {
			if !untilDelim {
				return nil, nil, errors.New("sequence delimiter in a sequence of defined length")
			}
			return items, b, nil
		}
		if t != tagItem {
			return nil, nil, fmt.Errorf("(%04X,%04X) where a sequence item belongs", t>>16, t&0xFFFF)
		}
		var item Dataset
		var err error
		if n == undefinedLength {
			item, b, err = d.dataset(b, depth, true)
		} else {
			if uint64(n) > uint64(len(b)) {
				return nil, nil, fmt.Errorf("item declares %d bytes; %d remain", n, len(b))
			}
			var rest []byte
			item, rest, err = d.dataset(b[:n], depth, false)
			if err == nil && len(rest) != 0 {
				err = errors.New("item has bytes after its last element")
			}
			b = b[n:]
		}
		if err != nil {
			return nil, nil, err
		}
		items = append(items, item)
	}
	if untilDelim {
		return nil, nil, errors.New("sequence without its delimiter")
	}
	return items, nil, nil
}

var vrs = map[string]bool{"AE": true, "AS": true, "AT": true, "CS": true, "DA": true, "DS": true, "DT": true, "FL": true,
	"FD": true, "IS": true, "LO": true, "LT": true, "OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"PN": true, "SH": true, "SL": true, "SQ": true, "SS": true, "ST": true, "SV": true, "TM": true, "UC": true, "UI": true,
	"UL": true, "UN": true, "UR": true, "US": true, "UT": true, "UV": true}

func validVR(vr string) bool { return vrs[vr] }

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// implicitVR is the dictionary VR of a tag (the first, where it has
// several); UN for private and unknown tags, UL for group lengths.
func implicitVR(t uint32) string {
	if t&0xFFFF == 0 {
		return "UL"
	}
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	if err != nil || len(info.VRs) == 0 {
		return "UN"
	}
	switch vr := info.VRs[0]; vr {
	case "xs", "US or SS":
		return "US"
	case "ox", "OB or OW":
		return "OB"
	default:
		if validVR(vr) {
			return vr
		}
	}
	return "UN"
}

// swap converts the numeric values of vr between byte orders in place.
func swap(vr string, v []byte) {
	size := 0
	switch vr {
	case "US", "SS", "OW", "AT":
		size = 2
	case "UL", "SL", "FL", "OF", "OL":
		size = 4
	case "FD", "OD", "SV", "UV", "OV":
		size = 8
	}
	if size == 0 {
		return
	}
	for i := 0; i+size <= len(v); i += size {
		for j := 0; j < size/2; j++ {
			v[i+j], v[i+size-1-j] = v[i+size-1-j], v[i+j]
		}
	}
}

// Encode writes the data set in transfer syntax ts, with defined lengths.
func (ds Dataset) Encode(ts string) ([]byte, error) {
	c, deflated, err := codecOf(ts)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := c.write(&buf, ds); err != nil {
		return nil, err
	}
	if !deflated {
		return buf.Bytes(), nil
	}
	var out bytes.Buffer
	fw, _ := flate.NewWriter(&out, flate.DefaultCompression)
	fw.Write(buf.Bytes())
	fw.Close()
	return out.Bytes(), nil
}

func (c codec) put16(w *bytes.Buffer, v uint16) {
	if c.big {
		w.Write(binary.BigEndian.AppendUint16(nil, v))
	} else {
		w.Write(binary.LittleEndian.AppendUint16(nil, v))
	}
}

func (c codec) put32(w *bytes.Buffer, v uint32) {
	if c.big {
		w.Write(binary.BigEndian.AppendUint32(nil, v))
	} else {
		w.Write(binary.LittleEndian.AppendUint32(nil, v))
	}
}

func (c codec) header(w *bytes.Buffer, t uint32, vr string, n int) {
	c.put16(w, uint16(t>>16))
	c.put16(w, uint16(t))
	if !c.explicit {
		c.put32(w, uint32(n))
		return
	}
	w.WriteString(vr)
	if longVR(vr) {
		w.Write([]byte{0, 0})
		c.put32(w, uint32(n))
	} else {
		c.put16(w, uint16(n))
	}
}

func (c codec) write(w *bytes.Buffer, ds Dataset) error {
	for _, el := range ds {
		if el.VR == "SQ" {
			var body bytes.Buffer
			for _, it := range el.Items {
				var ib bytes.Buffer
				if err := c.write(&ib, it); err != nil {
					return err
				}
				c.put16(&body, 0xFFFE)
				c.put16(&body, 0xE000)
				c.put32(&body, uint32(ib.Len()))
				body.Write(ib.Bytes())
			}
			c.header(w, el.Tag, "SQ", body.Len())
			w.Write(body.Bytes())
			continue
		}
		v := el.Value
		if len(v)%2 == 1 {
			v = append(append([]byte(nil), v...), padByte(el.VR))
		}
		if c.explicit && !longVR(el.VR) && len(v) > 0xFFFF {
			return fmt.Errorf("element (%04X,%04X) is too long for its VR", el.Tag>>16, el.Tag&0xFFFF)
		}
		c.header(w, el.Tag, el.VR, len(v))
		if c.big {
			v = append([]byte(nil), v...)
			swap(el.VR, v)
		}
		w.Write(v)
	}
	return nil
}

func padByte(vr string) byte {
	switch vr {
	case "UI", "OB", "UN":
		return 0
	}
	return ' '
}

// Find returns the element with tag t, or nil.
func (ds Dataset) Find(t uint32) *Element {
	i := sort.Search(len(ds), func(i int) bool { return ds[i].Tag >= t })
	if i < len(ds) && ds[i].Tag == t {
		return &ds[i]
	}
	return nil
}

// String returns the value of a text element without padding ("" when
// absent or empty).
func (ds Dataset) String(t uint32) string {
	el := ds.Find(t)
	if el == nil {
		return ""
	}
	return strings.TrimRight(strings.TrimLeft(string(el.Value), " "), " \x00")
}

// Has reports whether the data set holds an element with tag t.
func (ds Dataset) Has(t uint32) bool { return ds.Find(t) != nil }

// Set adds or replaces a text element (value unpadded; Encode pads).
func (ds *Dataset) Set(t uint32, vr, value string) {
	ds.SetBytes(t, vr, []byte(value))
}

// SetItems adds or replaces a sequence.
func (ds *Dataset) SetItems(t uint32, items []Dataset) {
	ds.SetBytes(t, "SQ", nil)
	ds.Find(t).Items = items
}

// SetBytes adds or replaces an element with a raw little-endian value.
func (ds *Dataset) SetBytes(t uint32, vr string, value []byte) {
	if el := ds.Find(t); el != nil {
		el.VR, el.Value, el.Items = vr, value, nil
		return
	}
	*ds = append(*ds, Element{Tag: t, VR: vr, Value: value})
	sort.Slice(*ds, func(i, j int) bool { return (*ds)[i].Tag < (*ds)[j].Tag })
}
