package dicomweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pacsnet/pacsnet/dicomio"
)

// BulkData decides how a binary value is written: a non-empty URI puts a
// BulkDataURI in its place (PS3.18 F.2.6), "" inlines it (InlineBinary).
// It is also called for every element whose value was left out of the
// data set (Element.BulkLen > 0, as dicomio.Describe leaves them), with
// size BulkLen; there "" leaves the attribute without a value.
type BulkData func(tag uint32, size int) (uri string)

// JSON encodes ds in the DICOM JSON model (PS3.18 F.2): an object keyed by
// eight upper-case hex digits, each attribute with its "vr" and, unless
// empty, its "Value" (strings, numbers, PersonName objects, nested data
// sets) or, for binary VRs, "InlineBinary" or "BulkDataURI". Text is
// taken as UTF-8 (invalid bytes become U+FFFD); bulk may be nil.
func JSON(ds dicomio.Dataset, bulk BulkData) ([]byte, error) {
	var b bytes.Buffer
	if err := writeObject(&b, ds, bulk); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeObject(b *bytes.Buffer, ds dicomio.Dataset, bulk BulkData) error {
	b.WriteByte('{')
	for i, el := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"%08X":{"vr":%q`, el.Tag, el.VR)
		if err := writeValue(b, el, bulk); err != nil {
			return fmt.Errorf("(%04X,%04X): %w", el.Tag>>16, el.Tag&0xFFFF, err)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return nil
}

func writeValue(b *bytes.Buffer, el dicomio.Element, bulk BulkData) error {
	if el.BulkLen > 0 && el.Value == nil {
		// A value left out of the data set (dicomio.Describe): only a
		// BulkDataURI can stand for it; without one the attribute is
		// written without a value.
		if bulk != nil {
			if uri := bulk(el.Tag, int(min(el.BulkLen, math.MaxInt))); uri != "" {
				return writeKey(b, "BulkDataURI", uri)
			}
		}
		return nil
	}
	switch el.VR {
	case "SQ":
		if len(el.Items) == 0 {
			return nil
		}
		b.WriteString(`,"Value":[`)
		for i, it := range el.Items {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeObject(b, it, bulk); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		if len(el.Value) == 0 {
			return nil
		}
		if bulk != nil {
			if uri := bulk(el.Tag, len(el.Value)); uri != "" {
				return writeKey(b, "BulkDataURI", uri)
			}
		}
		return writeKey(b, "InlineBinary", base64.StdEncoding.EncodeToString(el.Value))
	}
	vals, err := values(el)
	if err != nil || len(vals) == 0 {
		return err
	}
	b.WriteString(`,"Value":`)
	out, err := json.Marshal(vals)
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

func writeKey(b *bytes.Buffer, key, v string) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, `,%q:%s`, key, out)
	return nil
}

// values turns a non-sequence, non-binary element into its JSON values;
// an empty component of a multi-valued string is null.
func values(el dicomio.Element) ([]any, error) {
	v := el.Value
	le := binary.LittleEndian
	fixed := func(size int, conv func([]byte) any) ([]any, error) {
		if len(v)%size != 0 {
			return nil, fmt.Errorf("%d bytes is not a whole number of %s values", len(v), el.VR)
		}
		out := make([]any, 0, len(v)/size)
		for i := 0; i+size <= len(v); i += size {
			out = append(out, conv(v[i:i+size]))
		}
		return out, nil
	}
	switch el.VR {
	case "US":
		return fixed(2, func(b []byte) any { return le.Uint16(b) })
	case "SS":
		return fixed(2, func(b []byte) any { return int16(le.Uint16(b)) })
	case "UL":
		return fixed(4, func(b []byte) any { return le.Uint32(b) })
	case "SL":
		return fixed(4, func(b []byte) any { return int32(le.Uint32(b)) })
	case "UV":
		return fixed(8, func(b []byte) any { return le.Uint64(b) })
	case "SV":
		return fixed(8, func(b []byte) any { return int64(le.Uint64(b)) })
	case "FL":
		return fixed(4, func(b []byte) any { return finite(float64(math.Float32frombits(le.Uint32(b)))) })
	case "FD":
		return fixed(8, func(b []byte) any { return finite(math.Float64frombits(le.Uint64(b))) })
	case "AT":
		return fixed(4, func(b []byte) any { return fmt.Sprintf("%04X%04X", le.Uint16(b), le.Uint16(b[2:])) })
	}
	s := strings.ToValidUTF8(string(v), "\uFFFD")
	s = strings.TrimRight(s, "\x00 ")
	if s == "" {
		return nil, nil
	}
	var parts []string
	switch el.VR {
	case "LT", "ST", "UT", "UR": // single-valued: a backslash is text
		parts = []string{s}
	default:
		parts = strings.Split(s, `\`)
	}
	out := make([]any, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			out = append(out, nil)
			continue
		}
		switch el.VR {
		case "PN":
			out = append(out, personName(p))
		case "IS":
			if n, err := strconv.ParseInt(strings.TrimPrefix(p, "+"), 10, 64); err == nil {
				out = append(out, n)
			} else {
				out = append(out, p) // not a number: kept as text rather than lost
			}
		case "DS":
			if f, err := strconv.ParseFloat(p, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				out = append(out, json.Number(strconv.FormatFloat(f, 'g', -1, 64)))
			} else {
				out = append(out, p)
			}
		default:
			out = append(out, p)
		}
	}
	return out, nil
}

// personName splits a PN value into its component groups.
func personName(p string) map[string]string {
	out := map[string]string{}
	groups := strings.SplitN(p, "=", 3)
	for i, key := range []string{"Alphabetic", "Ideographic", "Phonetic"} {
		if i < len(groups) && strings.TrimRight(groups[i], "^") != "" {
			out[key] = groups[i]
		}
	}
	return out
}

// finite keeps NaN and infinities, which JSON cannot carry, as strings.
func finite(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
