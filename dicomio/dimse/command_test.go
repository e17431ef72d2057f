package dimse

import (
	"reflect"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []*Command{
		{Field: CEchoRQ, MessageID: 1, AffectedSOPClass: "1.2.840.10008.1.1"},
		{Field: CEchoRSP, MessageIDBeingAnswered: 1, AffectedSOPClass: "1.2.840.10008.1.1", Status: StatusSuccess},
		{Field: CStoreRQ, MessageID: 7, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.4.5",
			Priority: PriorityMedium, HasDataSet: true, MoveOriginatorAE: "WS1", MoveOriginatorID: U16(3)},
		{Field: CStoreRSP, MessageIDBeingAnswered: 7, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.4.5",
			Status: StatusCannotUnderstand, ErrorComment: "not a DICOM data set", OffendingElements: []uint32{0x0020000D}},
		{Field: CMoveRSP, MessageIDBeingAnswered: 2, AffectedSOPClass: "1.2.840.10008.5.1.4.1.2.2.2", Status: StatusPending,
			Remaining: U16(5), Completed: U16(3), Failed: U16(0), Warning: U16(0)},
		{Field: CMoveRQ, MessageID: 2, AffectedSOPClass: "1.2.840.10008.5.1.4.1.2.2.2", MoveDestination: "STORESCP", HasDataSet: true},
	} {
		got, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("%04X: %v", c.Field, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%04X:\n got %+v\nwant %+v", c.Field, got, c)
		}
	}
}

func TestCommandRejects(t *testing.T) {
	good := (&Command{Field: CEchoRQ, MessageID: 1, AffectedSOPClass: "1.2.840.10008.1.1"}).Encode()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", good[:len(good)-1], "declares"},
		{"header cut", good[:5], "truncated"},
		{"other group", append(append([]byte(nil), good...), 8, 0, 0x18, 0, 2, 0, 0, 0, '1', 0), "group 0008"},
		{"no field", (&Command{Field: CEchoRQ}).Encode()[:12], "no Command Field"},
		{"bad US", func() []byte {
			b := append([]byte(nil), good...)
			// (0000,0100) length 2 → 3 with a byte more at the end
			i := strings.Index(string(b), "\x00\x00\x00\x01\x02\x00\x00\x00")
			b[i+4] = 3
			return append(b[:i+10], append([]byte{0}, b[i+10:]...)...)
		}(), "a US is 2"},
	} {
		if _, err := DecodeCommand(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add((&Command{Field: CStoreRQ, MessageID: 7, AffectedSOPClass: "1.2.3", AffectedSOPInstance: "1.2.3.4", HasDataSet: true}).Encode())
	f.Add((&Command{Field: CMoveRSP, MessageIDBeingAnswered: 2, Status: StatusPending, Remaining: U16(1)}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		again, err := DecodeCommand(c.Encode())
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		// Encode writes the message ID a command of its kind carries and
		// the priority of requests that have one; compare what survives.
		if again.Field != c.Field || again.AffectedSOPClass != c.AffectedSOPClass || again.AffectedSOPInstance != c.AffectedSOPInstance ||
			again.HasDataSet != c.HasDataSet || again.ErrorComment != c.ErrorComment || again.MoveDestination != c.MoveDestination {
			t.Fatalf("round trip differs:\n%+v\n%+v", again, c)
		}
	})
}
