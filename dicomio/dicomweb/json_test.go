package dicomweb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
)

func TestJSON(t *testing.T) {
	var ds dicomio.Dataset
	ds.Set(0x00080020, "DA", "20240615")
	ds.Set(0x00080061, "CS", `CT\MR`)
	ds.Set(0x00100010, "PN", "Doe^Jane=山田^花子")
	ds.Set(0x00100020, "LO", "")
	ds.Set(0x0020000D, "UI", "1.2.3\x00")
	ds.Set(0x00201208, "IS", "42 ")
	ds.Set(0x00280030, "DS", `0.5\0.5`)
	ds.SetBytes(0x00280010, "US", binary.LittleEndian.AppendUint16(nil, 512))
	ds.SetBytes(0x7FE00010, "OW", make([]byte, 8))
	ds.SetItems(0x00081110, []dicomio.Dataset{{{Tag: 0x00081150, VR: "UI", Value: []byte("1.2.840.10008.5.1.4.1.1.2")}}})
	b, err := JSON(ds, func(tag uint32, size int) string {
		if tag == 0x7FE00010 {
			return "https://node/bulk/7FE00010"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	for tag, want := range map[string]string{
		"00080020": `{"vr":"DA","Value":["20240615"]}`,
		"00080061": `{"vr":"CS","Value":["CT","MR"]}`,
		"00100010": `{"vr":"PN","Value":[{"Alphabetic":"Doe^Jane","Ideographic":"山田^花子"}]}`,
		"00100020": `{"vr":"LO"}`,
		"0020000D": `{"vr":"UI","Value":["1.2.3"]}`,
		"00201208": `{"vr":"IS","Value":[42]}`,
		"00280030": `{"vr":"DS","Value":[0.5,0.5]}`,
		"00280010": `{"vr":"US","Value":[512]}`,
		"7FE00010": `{"vr":"OW","BulkDataURI":"https://node/bulk/7FE00010"}`,
		"00081110": `{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.2"]}}]}`,
	} {
		one, _ := json.Marshal(got[tag])
		var w any
		json.Unmarshal([]byte(want), &w)
		wb, _ := json.Marshal(w)
		if string(one) != string(wb) {
			t.Errorf("%s: %s, want %s", tag, one, wb)
		}
	}
	if !strings.HasPrefix(string(b), `{"00080020":`) {
		t.Errorf("attributes not in tag order: %.40s", b)
	}
}

// Whatever a data set holds, its JSON is valid JSON.
func FuzzJSON(f *testing.F) {
	var ds dicomio.Dataset
	ds.Set(0x00100010, "PN", "Doe^Jane")
	seed, _ := ds.Encode(dicomio.ExplicitVRLittleEndian)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := dicomio.DecodeDataset(b, dicomio.ExplicitVRLittleEndian)
		if err != nil {
			return
		}
		out, err := JSON(ds, nil)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
	})
}

// An element Describe left out of the data set (Value nil, BulkLen set)
// gets its BulkDataURI from bulk, called with BulkLen; it is never
// written as an empty InlineBinary.
func TestJSONBulkLen(t *testing.T) {
	ds := dicomio.Dataset{
		{Tag: 0x00091010, VR: "OB", BulkLen: 4000},
		{Tag: 0x7FE00010, VR: "OW", BulkLen: 524288},
	}
	var calls []string
	b, err := JSON(ds, func(tag uint32, size int) string {
		calls = append(calls, fmt.Sprintf("%08X:%d", tag, size))
		if tag == 0x7FE00010 {
			return "https://node/bulk/7FE00010"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"00091010":{"vr":"OB"},"7FE00010":{"vr":"OW","BulkDataURI":"https://node/bulk/7FE00010"}}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	if strings.Join(calls, " ") != "00091010:4000 7FE00010:524288" {
		t.Errorf("bulk called with %v", calls)
	}
	if b, _ := JSON(ds, nil); string(b) != `{"00091010":{"vr":"OB"},"7FE00010":{"vr":"OW"}}` {
		t.Errorf("without bulk: %s", b)
	}
}
