package dicomio

import (
	"encoding/binary"
	"errors"
)

// DataSetOf returns a Part-10 file's data set: the bytes after its
// preamble and file meta group (what C-STORE carries, in the meta group's
// transfer syntax). It walks the meta group's elements rather than
// trusting its group length.
func DataSetOf(b []byte) ([]byte, error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return nil, errors.New("read instance: not a Part-10 stream")
	}
	p := 132
	for p+8 <= len(b) && binary.LittleEndian.Uint16(b[p:]) == 0x0002 {
		vr := string(b[p+4 : p+6])
		var n int
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			if p+12 > len(b) {
				return nil, errors.New("read instance: truncated file meta")
			}
			n, p = int(binary.LittleEndian.Uint32(b[p+8:])), p+12
		default:
			n, p = int(binary.LittleEndian.Uint16(b[p+6:])), p+8
		}
		if n < 0 || p+n > len(b) {
			return nil, errors.New("read instance: truncated file meta")
		}
		p += n
	}
	return b[p:], nil
}
