package dicomio

import (
	"reflect"
	"testing"
)

var allCodecs = []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian,
	DeflatedExplicitVRLittleEndian}

func sampleIdentifier() Dataset {
	var ds Dataset
	ds.Set(0x00080052, "CS", "STUDY")
	ds.Set(0x00100010, "PN", "DOE^J*")
	ds.Set(0x00100020, "LO", "")
	ds.Set(0x0020000D, "UI", "")
	ds.Set(0x00080020, "DA", "20240101-20241231")
	ds.SetBytes(0x00280010, "US", []byte{0x00, 0x02})
	ds.SetItems(0x00081110, []Dataset{{{Tag: 0x00081150, VR: "UI", Value: []byte("1.2.3\x00")}}})
	return ds
}

func TestDatasetRoundTrip(t *testing.T) {
	want := sampleIdentifier()
	for _, ts := range allCodecs {
		b, err := want.Encode(ts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeDataset(b, ts)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		// Encode pads odd values; compare what the padding leaves.
		if got.String(0x00100010) != "DOE^J*" || got.String(0x00080052) != "STUDY" || !got.Has(0x0020000D) ||
			!reflect.DeepEqual(got.Find(0x00280010).Value, []byte{0x00, 0x02}) || len(got.Find(0x00081110).Items) != 1 {
			t.Errorf("%s: %+v", ts, got)
		}
		if ts == ImplicitVRLittleEndian && got.Find(0x00100010).VR != "PN" {
			t.Errorf("implicit VR from the dictionary: %s", got.Find(0x00100010).VR)
		}
	}
}

func TestDatasetRejects(t *testing.T) {
	good, _ := sampleIdentifier().Encode(ExplicitVRLittleEndian)
	for name, b := range map[string][]byte{
		"truncated":    good[:len(good)-1],
		"out of order": append(append([]byte(nil), good...), 0x08, 0x00, 0x52, 0x00, 'C', 'S', 2, 0, 'X', ' '),
		"bad VR":       {0x10, 0x00, 0x10, 0x00, 'Z', 'Z', 0, 0},
		"huge":         make([]byte, MaxIdentifier+1),
	} {
		if _, err := DecodeDataset(b, ExplicitVRLittleEndian); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeDataset(f *testing.F) {
	for _, ts := range allCodecs[:3] {
		b, _ := sampleIdentifier().Encode(ts)
		f.Add(b, uint8(len(ts)%3))
	}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		ts := allCodecs[int(which)%3]
		ds, err := DecodeDataset(b, ts)
		if err != nil {
			return
		}
		enc, err := ds.Encode(ts)
		if err != nil {
			return // a long value in a short VR, say: refused, not crashed
		}
		again, err := DecodeDataset(enc, ts)
		if err != nil {
			t.Fatalf("re-encoded data set does not decode: %v", err)
		}
		if len(again) != len(ds) {
			t.Fatalf("round trip: %d elements, was %d", len(again), len(ds))
		}
	})
}
