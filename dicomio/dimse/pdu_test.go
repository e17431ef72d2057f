package dimse

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func sampleRQ() *AssociateRQ {
	return &AssociateRQ{
		ProtocolVersion: 1, CalledAE: "PACSNET", CallingAE: "STORESCU", AppContext: ApplicationContext,
		Contexts: []ContextRQ{
			{ID: 1, AbstractSyntax: "1.2.840.10008.1.1", TransferSyntaxes: []string{"1.2.840.10008.1.2"}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}},
		},
		User: UserInfo{MaxLength: 16384, HasMaxLength: true, ImplementationClass: "1.2.276.0.7230010.3.0.3.6.8",
			ImplementationVersion: "OFFIS_DCMTK_368", AsyncOps: &AsyncOps{1, 1},
			Roles: []RoleSelection{{SOPClass: "1.2.840.10008.5.1.4.1.1.2", SCU: false, SCP: true}}},
	}
}

func TestPDURoundTrip(t *testing.T) {
	for _, p := range []PDU{
		sampleRQ(),
		&AssociateAC{ProtocolVersion: 1, CalledAE: "PACSNET", CallingAE: "STORESCU", AppContext: ApplicationContext,
			Contexts: []ContextAC{{ID: 1, Result: ContextAccepted, TransferSyntax: "1.2.840.10008.1.2"}, {ID: 3, Result: ContextAbstractRejected}},
			User:     UserInfo{MaxLength: 0, HasMaxLength: true, ImplementationClass: "1.2.3"}},
		&AssociateRJ{Result: RejectPermanent, Source: RejectSourceUser, Reason: RejectCallingAE},
		&PData{Values: []PDV{{Context: 1, Command: true, Last: true, Data: []byte{1, 2, 3, 4}}, {Context: 3, Data: []byte{}}}},
		&ReleaseRQ{}, &ReleaseRP{}, &Abort{Source: AbortSourceProvider, Reason: AbortUnexpectedPDU},
	} {
		b := AppendPDU(nil, p)
		got, err := DecodePDU(b)
		if err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", p, got, p)
		}
		r := NewReader(bytes.NewReader(b), 1<<20)
		if got, err := r.Read(); err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("%T: Reader: %+v, %v", p, got, err)
		}
	}
}

func TestPDUEncoding(t *testing.T) {
	b := AppendPDU(nil, sampleRQ())
	if b[0] != 0x01 || b[6] != 0 || b[7] != 1 {
		t.Fatalf("header % x", b[:8])
	}
	if got := string(b[10:26]); got != "PACSNET         " {
		t.Errorf("called AE field %q", got)
	}
	if got := string(b[26:42]); got != "STORESCU        " {
		t.Errorf("calling AE field %q", got)
	}
	if b[74] != itemAppContext {
		t.Errorf("first item 0x%02x", b[74])
	}
}

func TestPDURejects(t *testing.T) {
	good := AppendPDU(nil, sampleRQ())
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"short", []byte{1, 0, 0}, "shorter than its header"},
		{"unknown type", []byte{9, 0, 0, 0, 0, 0}, "unknown PDU type 0x09"},
		{"length mismatch", mut(func(b []byte) []byte { b[5]++; return b }), "does not match"},
		{"empty called AE", mut(func(b []byte) []byte { copy(b[10:26], strings.Repeat(" ", 16)); return b }), "empty AE title"},
		{"control in AE", mut(func(b []byte) []byte { b[11] = 0x1b; return b }), "outside the default repertoire"},
		{"item overruns", mut(func(b []byte) []byte { b[76] = 0xff; return b }), "declares"},
		{"empty P-DATA", []byte{typePData, 0, 0, 0, 0, 0}, "without presentation data values"},
		{"long release", []byte{typeReleaseRQ, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, "want 4"},
	} {
		_, err := DecodePDU(tc.b)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a protocol error saying %q", tc.name, err, tc.want)
		}
	}
}

// A PDU longer than the reader's limit is refused before its body is
// read or allocated.
func TestReaderLimit(t *testing.T) {
	hdr := []byte{typePData, 0, 0x7f, 0xff, 0xff, 0xff}
	r := NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("x")), 1<<20)
	_, err := r.Read()
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), ErrTooLarge.Error()) || cap(r.buf) != 0 {
		t.Fatalf("oversized P-DATA: %v (buffer %d)", err, cap(r.buf))
	}
	r = NewReader(bytes.NewReader([]byte{typeAssociateRQ, 0, 0, 0, 1, 0}), 1<<20)
	if _, err := r.Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: %v", err)
	}
}

func FuzzDecodePDU(f *testing.F) {
	f.Add(AppendPDU(nil, sampleRQ()))
	f.Add(AppendPDU(nil, &AssociateAC{ProtocolVersion: 1, CalledAE: "A", CallingAE: "B", AppContext: ApplicationContext,
		Contexts: []ContextAC{{ID: 1, TransferSyntax: "1.2"}}}))
	f.Add(AppendPDU(nil, &PData{Values: []PDV{{Context: 1, Command: true, Last: true, Data: []byte{1, 2}}}}))
	f.Add(AppendPDU(nil, &Abort{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePDU(b)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ProtocolError", err)
			}
			return
		}
		again, err := DecodePDU(AppendPDU(nil, p))
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", p, err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip of %T differs:\n%+v\n%+v", p, again, p)
		}
	})
}
