package dicomio_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// ds builds dataset bytes by hand, in any of the three encodings, so that
// tests can make inputs no well-behaved writer would.
type ds struct {
	b        []byte
	big      bool
	explicit bool
}

func newDS(explicit, big bool) *ds { return &ds{explicit: explicit, big: big} }

func (d *ds) order() binary.AppendByteOrder {
	if d.big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func (d *ds) tag(t uint32) {
	d.b = d.order().AppendUint16(d.b, uint16(t>>16))
	d.b = d.order().AppendUint16(d.b, uint16(t))
}

func isLongVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// header writes an element header declaring length l.
func (d *ds) header(t uint32, vr string, l uint32) *ds {
	d.tag(t)
	if !d.explicit || t>>16 == 0xFFFE {
		d.b = d.order().AppendUint32(d.b, l)
		return d
	}
	d.b = append(d.b, vr...)
	if isLongVR(vr) {
		d.b = append(d.b, 0, 0)
		d.b = d.order().AppendUint32(d.b, l)
	} else {
		d.b = d.order().AppendUint16(d.b, uint16(l))
	}
	return d
}

// str adds a text element padded to even length.
func (d *ds) str(t uint32, vr, v string) *ds {
	b := []byte(v)
	if len(b)%2 != 0 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	d.header(t, vr, uint32(len(b)))
	d.b = append(d.b, b...)
	return d
}

func (d *ds) bytes(t uint32, vr string, v []byte) *ds {
	d.header(t, vr, uint32(len(v)))
	d.b = append(d.b, v...)
	return d
}

// item/delimiters, always without VR.
func (d *ds) item(l uint32) *ds         { return d.header(0xFFFEE000, "", l) }
func (d *ds) itemDelim() *ds            { return d.header(0xFFFEE00D, "", 0) }
func (d *ds) seqDelim() *ds             { return d.header(0xFFFEE0DD, "", 0) }
func (d *ds) raw(b ...byte) *ds         { d.b = append(d.b, b...); return d }
func (d *ds) undefSQ(t uint32) *ds      { return d.header(t, "SQ", 0xFFFFFFFF) }
func (d *ds) undefPixels(vr string) *ds { return d.header(0x7FE00010, vr, 0xFFFFFFFF) }

const (
	secretName = "SECRET^PATIENTNAME"
	secretID   = "SECRETPID42"
	testSOP    = "1.2.826.0.1.3680043.10.1455.99.1"
)

// required adds the four required UIDs and some patient data, in
// ascending tag order up to (0020,000E).
func (d *ds) required() *ds {
	d.str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7")
	d.str(0x00080018, "UI", testSOP)
	d.str(0x00080060, "CS", "OT")
	d.str(0x00100010, "PN", secretName)
	d.str(0x00100020, "LO", secretID)
	d.str(0x0020000D, "UI", "1.2.826.0.1.3680043.10.1455.99.2")
	d.str(0x0020000E, "UI", "1.2.826.0.1.3680043.10.1455.99.3")
	return d
}

// part10 wraps a dataset in a preamble (not zero, to see it zeroed), DICM
// and a file meta group with the given transfer syntax.
func part10(tsUID string, dataset []byte) []byte {
	m := newDS(true, false)
	m.bytes(0x00020001, "OB", []byte{0, 1})
	m.str(0x00020002, "UI", "1.2.840.10008.5.1.4.1.1.7")
	m.str(0x00020003, "UI", testSOP)
	m.str(0x00020010, "UI", tsUID)
	g := newDS(true, false)
	g.bytes(0x00020000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(m.b))))
	out := make([]byte, 128, 132+len(g.b)+len(m.b)+len(dataset))
	for i := range out {
		out[i] = 0xA5
	}
	out = append(out, "DICM"...)
	out = append(out, g.b...)
	out = append(out, m.b...)
	return append(out, dataset...)
}

// datasetOf returns the dataset bytes of a corpus Part-10 file (which all
// have a correct group length).
func datasetOf(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	gl := binary.LittleEndian.Uint32(b[140:])
	return b[144+int(gl):]
}

func readCorpus(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
