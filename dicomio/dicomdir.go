package dicomio

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MediaStorageDirectoryStorage is the SOP Class of a DICOMDIR (PS3.4
// Annex F / PS3.10).
const MediaStorageDirectoryStorage = "1.2.840.10008.1.3.10"

// DirEntry is one file of a file-set, with the attributes its DICOMDIR
// records carry (PS3.3 F.5: patient, study, series and image keys).
// Text is UTF-8; the DICOMDIR declares ISO_IR 192.
type DirEntry struct {
	FileID []string // the file's path components in the file-set, each 1-8 of A-Z, 0-9 and _

	PatientID, PatientName string

	StudyUID, StudyDate, StudyTime, StudyDescription, StudyID, AccessionNumber string

	SeriesUID, Modality string
	SeriesNumber        int

	SOPClassUID, SOPInstanceUID, TransferSyntaxUID string
	InstanceNumber                                 int
}

// WriteDICOMDIR writes a DICOMDIR (a Part-10 file of SOP Class
// [MediaStorageDirectoryStorage], explicit VR little endian) describing
// entries as one PATIENT/STUDY/SERIES/IMAGE hierarchy, in the order the
// entries come (entries of one series together, as of one study and one
// patient). instanceUID is the DICOMDIR's own SOP Instance UID.
func WriteDICOMDIR(w io.Writer, fileSetID, instanceUID string, entries []DirEntry) error {
	for _, e := range entries {
		if err := checkFileID(e.FileID); err != nil {
			return err
		}
	}
	// Build the records depth first; each remembers its children so that
	// the offsets can be filled in once every record's position is known.
	type rec struct {
		typ      string
		body     []byte // elements after the four offset/flag/type elements
		children []*rec
		off      int // of its item tag, from the start of the file
	}
	var roots []*rec
	var pat, stu, ser *rec
	var patKey, stuKey, serKey string
	for _, e := range entries {
		if k := e.PatientID + "\x00" + e.PatientName; pat == nil || k != patKey {
			pat, patKey, stuKey = &rec{typ: "PATIENT", body: dirElems(
				el{0x00080005, "CS", "ISO_IR 192"}, el{0x00100010, "PN", e.PatientName}, el{0x00100020, "LO", e.PatientID})}, k, ""
			roots = append(roots, pat)
		}
		if stuKey != e.StudyUID {
			stu, stuKey, serKey = &rec{typ: "STUDY", body: dirElems(
				el{0x00080005, "CS", "ISO_IR 192"}, el{0x00080020, "DA", e.StudyDate}, el{0x00080030, "TM", e.StudyTime},
				el{0x00080050, "SH", e.AccessionNumber}, el{0x00081030, "LO", e.StudyDescription},
				el{0x0020000D, "UI", e.StudyUID}, el{0x00200010, "SH", e.StudyID})}, e.StudyUID, ""
			pat.children = append(pat.children, stu)
		}
		if serKey != e.SeriesUID {
			ser, serKey = &rec{typ: "SERIES", body: dirElems(
				el{0x00080060, "CS", e.Modality}, el{0x0020000E, "UI", e.SeriesUID}, el{0x00200011, "IS", itoaIS(e.SeriesNumber)})}, e.SeriesUID
			stu.children = append(stu.children, ser)
		}
		img := &rec{typ: "IMAGE", body: dirElems(el{0x00200013, "IS", itoaIS(e.InstanceNumber)})}
		img.body = append(dirElems(el{0x00041500, "CS", strings.Join(e.FileID, `\`)}, el{0x00041510, "UI", e.SOPClassUID},
			el{0x00041511, "UI", e.SOPInstanceUID}, el{0x00041512, "UI", e.TransferSyntaxUID}), img.body...)
		ser.children = append(ser.children, img)
	}

	meta := encodeMeta(MediaStorageDirectoryStorage, instanceUID, ExplicitVRLittleEndian)
	head := append(make([]byte, 128), "DICM"...)
	head = append(head, meta...)
	// The dataset before the sequence: File-set ID, the two root offsets
	// (filled in below), the consistency flag, and the sequence's header.
	fixed := dirElems(el{0x00041130, "CS", fileSetID})
	rootFirstAt := len(head) + len(fixed) + 8
	fixed = append(fixed, elemUL(0x00041200, 0)...)
	rootLastAt := len(head) + len(fixed) + 8
	fixed = append(fixed, elemUL(0x00041202, 0)...)
	fixed = append(fixed, elemUS(0x00041212, 0)...)

	// Lay the records out in depth-first order.
	var order []*rec
	var walk func(rs []*rec)
	walk = func(rs []*rec) {
		for _, r := range rs {
			order = append(order, r)
			walk(r.children)
		}
	}
	walk(roots)
	const recHead = 8 + 12 + 10 + 12 // item tag+length, (0004,1400) UL, (0004,1410) US, (0004,1420) UL
	seqStart := len(head) + len(fixed) + 12
	pos := seqStart
	size := 0
	for _, r := range order {
		r.off = pos
		n := recHead + len(dirElems(el{0x00041430, "CS", r.typ})) + len(r.body)
		pos += n
		size += n
	}
	next := map[*rec]int{}
	var link func(rs []*rec)
	link = func(rs []*rec) {
		for i, r := range rs {
			if i+1 < len(rs) {
				next[r] = rs[i+1].off
			}
			link(r.children)
		}
	}
	link(roots)

	out := make([]byte, 0, seqStart+size)
	out = append(out, head...)
	out = append(out, fixed...)
	if len(roots) > 0 {
		binary.LittleEndian.PutUint32(out[rootFirstAt:], uint32(roots[0].off))
		binary.LittleEndian.PutUint32(out[rootLastAt:], uint32(roots[len(roots)-1].off))
	}
	out = appendTag(out, 0x00041220)
	out = append(out, "SQ\x00\x00"...)
	out = binary.LittleEndian.AppendUint32(out, uint32(size))
	for _, r := range order {
		typ := dirElems(el{0x00041430, "CS", r.typ})
		item := make([]byte, 0, recHead-8+len(typ)+len(r.body))
		item = append(item, elemUL(0x00041400, uint32(next[r]))...)
		item = append(item, elemUS(0x00041410, 0xFFFF)...)
		lower := 0
		if len(r.children) > 0 {
			lower = r.children[0].off
		}
		item = append(item, elemUL(0x00041420, uint32(lower))...)
		item = append(item, typ...)
		item = append(item, r.body...)
		out = appendTag(out, 0xFFFEE000)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(item)))
		out = append(out, item...)
	}
	if len(out) > 1<<32-1 {
		return fmt.Errorf("write DICOMDIR: %d records are too many for 32-bit offsets", len(order))
	}
	_, err := w.Write(out)
	return err
}

// checkFileID holds a Referenced File ID to PS3.10 8.2: up to 8
// components of 1-8 characters from A-Z, 0-9 and _.
func checkFileID(id []string) error {
	if len(id) == 0 || len(id) > 8 {
		return fmt.Errorf("write DICOMDIR: a file ID has 1 to 8 components, not %d", len(id))
	}
	for _, c := range id {
		if len(c) == 0 || len(c) > 8 {
			return fmt.Errorf("write DICOMDIR: file ID component %q is not 1-8 characters", c)
		}
		for _, r := range c {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
				return fmt.Errorf("write DICOMDIR: file ID component %q has a character other than A-Z, 0-9 and _", c)
			}
		}
	}
	return nil
}

type el struct {
	tag uint32
	vr  string
	v   string
}

// dirElems encodes text elements in explicit VR little endian, in the
// order given (callers give them in tag order), each padded to even
// length; empty values are written as empty elements (type 2).
func dirElems(es ...el) []byte {
	var b []byte
	for _, e := range es {
		v := []byte(e.v)
		if len(v) > 0xFFFF-1 {
			v = v[:0xFFFE]
		}
		v = pad(v, padByte(e.vr))
		b = appendTag(b, e.tag)
		b = append(b, e.vr...)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

func elemUL(tag uint32, v uint32) []byte {
	b := appendTag(nil, tag)
	b = append(b, "UL\x04\x00"...)
	return binary.LittleEndian.AppendUint32(b, v)
}

func elemUS(tag uint32, v uint16) []byte {
	b := appendTag(nil, tag)
	b = append(b, "US\x02\x00"...)
	return binary.LittleEndian.AppendUint16(b, v)
}

func appendTag(b []byte, tag uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(tag>>16))
	return binary.LittleEndian.AppendUint16(b, uint16(tag))
}

func itoaIS(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
