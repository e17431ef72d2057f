package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3).
const (
	typeAssociateRQ = 0x01
	typeAssociateAC = 0x02
	typeAssociateRJ = 0x03
	typePData       = 0x04
	typeReleaseRQ   = 0x05
	typeReleaseRP   = 0x06
	typeAbort       = 0x07
)

// Item types of the associate PDUs (PS3.8 9.3.2, PS3.7 D.3.3).
const (
	itemAppContext   = 0x10
	itemPresCtxRQ    = 0x20
	itemPresCtxAC    = 0x21
	itemAbstract     = 0x30
	itemTransfer     = 0x40
	itemUserInfo     = 0x50
	itemMaxLength    = 0x51
	itemImplClass    = 0x52
	itemAsyncOps     = 0x53
	itemRole         = 0x54
	itemImplVersion  = 0x55
	itemSOPExtNeg    = 0x56
	itemCommonExtNeg = 0x57
	itemUserIdRQ     = 0x58
	itemUserIdAC     = 0x59
)

// ApplicationContext is the one DICOM application context name.
const ApplicationContext = "1.2.840.10008.3.1.1.1"

// pduHeaderLen is a PDU's type, reserved byte and 4-byte length.
const pduHeaderLen = 6

// Abort sources and reasons (PS3.8 9.3.8).
const (
	AbortSourceUser     = 0 // DICOM UL service-user
	AbortSourceProvider = 2 // DICOM UL service-provider

	AbortNotSpecified      = 0
	AbortUnrecognizedPDU   = 1
	AbortUnexpectedPDU     = 2
	AbortUnrecognizedParam = 4
	AbortUnexpectedParam   = 5
	AbortInvalidParam      = 6
)

// Reject results, sources and reasons (PS3.8 9.3.4).
const (
	RejectPermanent = 1
	RejectTransient = 2

	RejectSourceUser         = 1 // service-user
	RejectSourceACSE         = 2 // service-provider, ACSE related
	RejectSourcePresentation = 3 // service-provider, presentation related

	// source RejectSourceUser
	RejectNoReason   = 1
	RejectAppContext = 2
	RejectCallingAE  = 3
	RejectCalledAE   = 7
	// source RejectSourceACSE
	RejectProtocolVersion = 2
	// source RejectSourcePresentation
	RejectCongestion = 1
	RejectLocalLimit = 2
)

// Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2).
const (
	ContextAccepted         = 0
	ContextUserRejected     = 1
	ContextNoReason         = 2
	ContextAbstractRejected = 3
	ContextTransferRejected = 4
)

// PDU is one protocol data unit: *AssociateRQ, *AssociateAC,
// *AssociateRJ, *PData, *ReleaseRQ, *ReleaseRP or *Abort.
type PDU interface{ pduType() byte }

// AssociateRQ is an A-ASSOCIATE-RQ. AE titles are held without their
// padding spaces.
type AssociateRQ struct {
	ProtocolVersion uint16
	CalledAE        string
	CallingAE       string
	AppContext      string
	Contexts        []ContextRQ
	User            UserInfo
}

// ContextRQ is a proposed presentation context.
type ContextRQ struct {
	ID               byte
	AbstractSyntax   string
	TransferSyntaxes []string
}

// AssociateAC is an A-ASSOCIATE-AC.
type AssociateAC struct {
	ProtocolVersion uint16
	CalledAE        string
	CallingAE       string
	AppContext      string
	Contexts        []ContextAC
	User            UserInfo
}

// ContextAC is the answer to one proposed presentation context.
type ContextAC struct {
	ID             byte
	Result         byte
	TransferSyntax string
}

// UserInfo holds the user information sub-items this package negotiates.
// Extended negotiation and user identity items are kept raw: they are
// decoded, bounded, and ignored by the acceptor (no user identity
// negotiation is offered back).
type UserInfo struct {
	MaxLength             uint32 // 0: unlimited
	HasMaxLength          bool
	ImplementationClass   string
	ImplementationVersion string
	AsyncOps              *AsyncOps
	Roles                 []RoleSelection
	Other                 []RawItem // extended negotiation, user identity
}

// AsyncOps is the asynchronous operations window.
type AsyncOps struct{ Invoked, Performed uint16 }

// RoleSelection is an SCP/SCU role selection sub-item.
type RoleSelection struct {
	SOPClass string
	SCU, SCP bool
}

// RawItem is a sub-item kept as bytes.
type RawItem struct {
	Type byte
	Data []byte
}

// AssociateRJ is an A-ASSOCIATE-RJ.
type AssociateRJ struct{ Result, Source, Reason byte }

// PData is a P-DATA-TF: one or more presentation data values.
type PData struct{ Values []PDV }

// PDV is one presentation data value: a fragment of a command or a data
// set on a presentation context.
type PDV struct {
	Context byte
	Command bool // a command fragment (else a data set fragment)
	Last    bool // the last fragment of the command or data set
	Data    []byte
}

// ReleaseRQ and ReleaseRP are A-RELEASE-RQ and -RP.
type (
	ReleaseRQ struct{}
	ReleaseRP struct{}
)

// Abort is an A-ABORT.
type Abort struct{ Source, Reason byte }

func (*AssociateRQ) pduType() byte { return typeAssociateRQ }
func (*AssociateAC) pduType() byte { return typeAssociateAC }
func (*AssociateRJ) pduType() byte { return typeAssociateRJ }
func (*PData) pduType() byte       { return typePData }
func (*ReleaseRQ) pduType() byte   { return typeReleaseRQ }
func (*ReleaseRP) pduType() byte   { return typeReleaseRP }
func (*Abort) pduType() byte       { return typeAbort }

// A ProtocolError is a malformed or unexpected PDU. Reason is the A-ABORT
// reason to send the peer. Its message never quotes the peer's bytes.
type ProtocolError struct {
	Reason byte
	Msg    string
}

func (e *ProtocolError) Error() string { return "dicom upper layer: " + e.Msg }

func protoErr(reason byte, f string, a ...any) error {
	return &ProtocolError{Reason: reason, Msg: fmt.Sprintf(f, a...)}
}

// ErrTooLarge is wrapped by the error of a PDU longer than the reader
// accepts.
var ErrTooLarge = errors.New("PDU longer than the limit")

// maxAssociatePDU bounds associate PDUs whatever the P-DATA limit: 128
// presentation contexts with several transfer syntaxes each fit in a few
// tens of KiB.
const maxAssociatePDU = 256 << 10

// Reader reads PDUs from a stream into a buffer it reuses: a PDU's byte
// slices (PDV data, raw items) are valid until the next Read.
type Reader struct {
	r        io.Reader
	quickAck func() // after each PDU's header, when r is a TCP connection (quickack_linux.go)
	max      uint32 // the largest P-DATA-TF body accepted
	hdr      [pduHeaderLen]byte
	buf      []byte
}

// NewReader returns a Reader that accepts P-DATA-TF PDUs of at most
// maxPData bytes after the header (what we announced as our maximum
// length, plus room for the PDV headers).
func NewReader(r io.Reader, maxPData uint32) *Reader {
	return &Reader{r: r, max: maxPData}
}

// Read reads one PDU. An error that is not an io error is a
// *ProtocolError (possibly wrapping ErrTooLarge): the association must be
// aborted with its Reason.
func (rd *Reader) Read() (PDU, error) {
	if _, err := io.ReadFull(rd.r, rd.hdr[:]); err != nil {
		return nil, err
	}
	if rd.quickAck != nil {
		rd.quickAck() // acknowledge what came at once: the sender may hold the rest for it
	}
	t := rd.hdr[0]
	n := binary.BigEndian.Uint32(rd.hdr[2:])
	limit := uint32(maxAssociatePDU)
	switch t {
	case typePData:
		limit = rd.max
	case typeAssociateRQ, typeAssociateAC:
	case typeAssociateRJ, typeReleaseRQ, typeReleaseRP, typeAbort:
		limit = 4
	default:
		return nil, protoErr(AbortUnrecognizedPDU, "unknown PDU type 0x%02X", t)
	}
	if n > limit {
		return nil, &ProtocolError{Reason: AbortInvalidParam,
			Msg: fmt.Sprintf("PDU type 0x%02X declares %d bytes; the limit is %d: %v", t, n, limit, ErrTooLarge)}
	}
	if cap(rd.buf) < int(n) {
		rd.buf = make([]byte, n)
	}
	body := rd.buf[:n]
	if _, err := io.ReadFull(rd.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeBody(t, body)
}

// DecodePDU decodes one whole PDU (header and body) held in b; it is the
// fuzzed entry point, and what Reader uses after bounding the length.
func DecodePDU(b []byte) (PDU, error) {
	if len(b) < pduHeaderLen {
		return nil, protoErr(AbortInvalidParam, "PDU shorter than its header")
	}
	n := binary.BigEndian.Uint32(b[2:])
	if uint64(n) != uint64(len(b)-pduHeaderLen) {
		return nil, protoErr(AbortInvalidParam, "PDU length %d does not match the %d bytes that follow", n, len(b)-pduHeaderLen)
	}
	switch b[0] {
	case typeAssociateRQ, typeAssociateAC, typeAssociateRJ, typePData, typeReleaseRQ, typeReleaseRP, typeAbort:
	default:
		return nil, protoErr(AbortUnrecognizedPDU, "unknown PDU type 0x%02X", b[0])
	}
	return decodeBody(b[0], b[pduHeaderLen:])
}

func decodeBody(t byte, b []byte) (PDU, error) {
	switch t {
	case typeAssociateRQ:
		rq := &AssociateRQ{}
		v, called, calling, items, err := decodeAssocHeader(b)
		if err != nil {
			return nil, err
		}
		rq.ProtocolVersion, rq.CalledAE, rq.CallingAE = v, called, calling
		if err := rq.decodeItems(items); err != nil {
			return nil, err
		}
		return rq, nil
	case typeAssociateAC:
		ac := &AssociateAC{}
		v, called, calling, items, err := decodeAssocHeader(b)
		if err != nil {
			return nil, err
		}
		ac.ProtocolVersion, ac.CalledAE, ac.CallingAE = v, called, calling
		if err := ac.decodeItems(items); err != nil {
			return nil, err
		}
		return ac, nil
	case typeAssociateRJ:
		if len(b) != 4 {
			return nil, protoErr(AbortInvalidParam, "A-ASSOCIATE-RJ is %d bytes long, want 4", len(b))
		}
		return &AssociateRJ{Result: b[1], Source: b[2], Reason: b[3]}, nil
	case typePData:
		return decodePData(b)
	case typeReleaseRQ, typeReleaseRP:
		if len(b) != 4 {
			return nil, protoErr(AbortInvalidParam, "A-RELEASE PDU is %d bytes long, want 4", len(b))
		}
		if t == typeReleaseRQ {
			return &ReleaseRQ{}, nil
		}
		return &ReleaseRP{}, nil
	case typeAbort:
		if len(b) != 4 {
			return nil, protoErr(AbortInvalidParam, "A-ABORT is %d bytes long, want 4", len(b))
		}
		return &Abort{Source: b[2], Reason: b[3]}, nil
	}
	return nil, protoErr(AbortUnrecognizedPDU, "unknown PDU type 0x%02X", t)
}

// decodeAssocHeader reads the fixed part of an A-ASSOCIATE-RQ/AC: protocol
// version, reserved, called and calling AE titles, 32 reserved bytes.
func decodeAssocHeader(b []byte) (version uint16, called, calling string, items []byte, err error) {
	if len(b) < 68 {
		return 0, "", "", nil, protoErr(AbortInvalidParam, "A-ASSOCIATE PDU shorter than its fixed fields")
	}
	version = binary.BigEndian.Uint16(b)
	if called, err = aeTitle(b[4:20]); err != nil {
		return 0, "", "", nil, err
	}
	if calling, err = aeTitle(b[20:36]); err != nil {
		return 0, "", "", nil, err
	}
	return version, called, calling, b[68:], nil
}

// aeTitle reads a 16-byte AE title field: leading and trailing spaces
// are not significant (PS3.5 6.2, AE). Control characters and backslash
// are refused; an empty title too.
func aeTitle(b []byte) (string, error) {
	s := strings.TrimRight(strings.TrimLeft(string(b), " "), " \x00")
	if s == "" {
		return "", protoErr(AbortInvalidParam, "empty AE title")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7F || s[i] == '\\' {
			return "", protoErr(AbortInvalidParam, "AE title holds a character outside the default repertoire")
		}
	}
	return s, nil
}

// nextItem splits off one item: type, reserved, 2-byte length, body.
func nextItem(b []byte) (t byte, body, rest []byte, err error) {
	if len(b) < 4 {
		return 0, nil, nil, protoErr(AbortInvalidParam, "truncated item header")
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b)-4 < n {
		return 0, nil, nil, protoErr(AbortInvalidParam, "item 0x%02X declares %d bytes; %d remain", b[0], n, len(b)-4)
	}
	return b[0], b[4 : 4+n], b[4+n:], nil
}

// uidField reads a UID sub-item value: trailing NUL padding is tolerated
// (some implementations send it), the rest must be printable.
func uidField(b []byte, what string) (string, error) {
	s := strings.TrimRight(string(b), "\x00 ")
	if s == "" || len(s) > 64 {
		return "", protoErr(AbortInvalidParam, "%s is empty or longer than 64 characters", what)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] >= 0x7F {
			return "", protoErr(AbortInvalidParam, "%s holds a character that is not printable ASCII", what)
		}
	}
	return s, nil
}

// Bounds on what one associate PDU may carry.
const (
	maxContexts         = 128 // presentation context IDs are odd numbers 1..255
	maxTransferSyntaxes = 64  // per proposed context
	maxRoles            = 128
	maxOtherItems       = 256
)

// decodeAssocItems walks the variable items of an A-ASSOCIATE-RQ or -AC:
// one application context, one user information item, and presentation
// contexts of type pcType, each handed to context. what names the PDU in
// errors.
func decodeAssocItems(b []byte, what string, pcType byte, app *string, user *UserInfo, context func(body []byte) error) error {
	var seenApp, seenUser bool
	contexts := 0
	for len(b) > 0 {
		t, body, rest, err := nextItem(b)
		if err != nil {
			return err
		}
		b = rest
		switch t {
		case itemAppContext:
			if seenApp {
				return protoErr(AbortUnexpectedParam, "two application context items")
			}
			seenApp = true
			if *app, err = uidField(body, "application context name"); err != nil {
				return err
			}
		case pcType:
			if contexts == maxContexts {
				return protoErr(AbortInvalidParam, "more than %d presentation contexts", maxContexts)
			}
			contexts++
			if err := context(body); err != nil {
				return err
			}
		case itemUserInfo:
			if seenUser {
				return protoErr(AbortUnexpectedParam, "two user information items")
			}
			seenUser = true
			if err := user.decode(body); err != nil {
				return err
			}
		default:
			return protoErr(AbortUnrecognizedParam, "unknown item 0x%02X in %s", t, what)
		}
	}
	switch {
	case !seenApp:
		return protoErr(AbortInvalidParam, "%s without an application context", what)
	case contexts == 0 && pcType == itemPresCtxRQ:
		return protoErr(AbortInvalidParam, "%s proposes no presentation context", what)
	case !seenUser:
		return protoErr(AbortInvalidParam, "%s without user information", what)
	}
	return nil
}

func (rq *AssociateRQ) decodeItems(b []byte) error {
	return decodeAssocItems(b, "A-ASSOCIATE-RQ", itemPresCtxRQ, &rq.AppContext, &rq.User, func(body []byte) error {
		pc, err := decodeContextRQ(body)
		if err != nil {
			return err
		}
		rq.Contexts = append(rq.Contexts, pc)
		return nil
	})
}

func decodeContextRQ(b []byte) (ContextRQ, error) {
	if len(b) < 4 {
		return ContextRQ{}, protoErr(AbortInvalidParam, "truncated presentation context")
	}
	pc := ContextRQ{ID: b[0]}
	if pc.ID%2 == 0 {
		return pc, protoErr(AbortInvalidParam, "presentation context ID %d is even", pc.ID)
	}
	b = b[4:]
	for len(b) > 0 {
		t, body, rest, err := nextItem(b)
		if err != nil {
			return pc, err
		}
		b = rest
		switch t {
		case itemAbstract:
			if pc.AbstractSyntax != "" {
				return pc, protoErr(AbortUnexpectedParam, "presentation context %d has two abstract syntaxes", pc.ID)
			}
			if pc.AbstractSyntax, err = uidField(body, "abstract syntax"); err != nil {
				return pc, err
			}
		case itemTransfer:
			if len(pc.TransferSyntaxes) == maxTransferSyntaxes {
				return pc, protoErr(AbortInvalidParam, "presentation context %d proposes more than %d transfer syntaxes", pc.ID, maxTransferSyntaxes)
			}
			ts, err := uidField(body, "transfer syntax")
			if err != nil {
				return pc, err
			}
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, ts)
		default:
			return pc, protoErr(AbortUnrecognizedParam, "unknown sub-item 0x%02X in a presentation context", t)
		}
	}
	if pc.AbstractSyntax == "" || len(pc.TransferSyntaxes) == 0 {
		return pc, protoErr(AbortInvalidParam, "presentation context %d lacks its abstract syntax or transfer syntaxes", pc.ID)
	}
	return pc, nil
}

func (ac *AssociateAC) decodeItems(b []byte) error {
	return decodeAssocItems(b, "A-ASSOCIATE-AC", itemPresCtxAC, &ac.AppContext, &ac.User, func(body []byte) error {
		pc, err := decodeContextAC(body)
		if err != nil {
			return err
		}
		ac.Contexts = append(ac.Contexts, pc)
		return nil
	})
}

// decodeContextAC reads the answer to one proposed presentation context.
func decodeContextAC(body []byte) (ContextAC, error) {
	if len(body) < 4 {
		return ContextAC{}, protoErr(AbortInvalidParam, "truncated presentation context")
	}
	pc := ContextAC{ID: body[0], Result: body[2]}
	sub := body[4:]
	seen := false
	for len(sub) > 0 {
		st, sb, srest, err := nextItem(sub)
		if err != nil {
			return pc, err
		}
		sub = srest
		if st != itemTransfer || seen {
			return pc, protoErr(AbortUnexpectedParam, "presentation context %d: unexpected sub-item 0x%02X", pc.ID, st)
		}
		seen = true
		// A rejected context's transfer syntax is not significant.
		if pc.Result == ContextAccepted {
			if pc.TransferSyntax, err = uidField(sb, "transfer syntax"); err != nil {
				return pc, err
			}
		}
	}
	if pc.Result == ContextAccepted && pc.TransferSyntax == "" {
		return pc, protoErr(AbortInvalidParam, "accepted presentation context %d without a transfer syntax", pc.ID)
	}
	return pc, nil
}

func (u *UserInfo) decode(b []byte) error {
	for len(b) > 0 {
		t, body, rest, err := nextItem(b)
		if err != nil {
			return err
		}
		b = rest
		switch t {
		case itemMaxLength:
			if len(body) != 4 || u.HasMaxLength {
				return protoErr(AbortInvalidParam, "malformed or repeated maximum length sub-item")
			}
			u.MaxLength, u.HasMaxLength = binary.BigEndian.Uint32(body), true
		case itemImplClass:
			if u.ImplementationClass, err = uidField(body, "implementation class UID"); err != nil {
				return err
			}
		case itemImplVersion:
			s := strings.TrimRight(string(body), " \x00")
			if len(s) > 16 || !printableASCII(s) {
				return protoErr(AbortInvalidParam, "implementation version name is longer than 16 characters or not printable")
			}
			u.ImplementationVersion = s
		case itemAsyncOps:
			if len(body) != 4 {
				return protoErr(AbortInvalidParam, "malformed asynchronous operations window")
			}
			u.AsyncOps = &AsyncOps{Invoked: binary.BigEndian.Uint16(body), Performed: binary.BigEndian.Uint16(body[2:])}
		case itemRole:
			if len(u.Roles) == maxRoles {
				return protoErr(AbortInvalidParam, "more than %d role selections", maxRoles)
			}
			if len(body) < 2 {
				return protoErr(AbortInvalidParam, "truncated role selection")
			}
			n := int(binary.BigEndian.Uint16(body))
			if len(body) != 2+n+2 {
				return protoErr(AbortInvalidParam, "role selection lengths do not add up")
			}
			uid, err := uidField(body[2:2+n], "role selection SOP class")
			if err != nil {
				return err
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClass: uid, SCU: body[2+n] == 1, SCP: body[3+n] == 1})
		case itemSOPExtNeg, itemCommonExtNeg, itemUserIdRQ, itemUserIdAC:
			if len(u.Other) == maxOtherItems {
				return protoErr(AbortInvalidParam, "more than %d extended negotiation items", maxOtherItems)
			}
			u.Other = append(u.Other, RawItem{Type: t, Data: body})
		default:
			return protoErr(AbortUnrecognizedParam, "unknown user information sub-item 0x%02X", t)
		}
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7F {
			return false
		}
	}
	return true
}

func decodePData(b []byte) (*PData, error) {
	p := &PData{}
	for len(b) > 0 {
		if len(b) < 6 {
			return nil, protoErr(AbortInvalidParam, "truncated presentation data value")
		}
		n := binary.BigEndian.Uint32(b)
		if n < 2 || uint64(n) > uint64(len(b)-4) {
			return nil, protoErr(AbortInvalidParam, "presentation data value declares %d bytes; %d remain", n, len(b)-4)
		}
		hdr := b[5]
		if hdr&^0x03 != 0 {
			return nil, protoErr(AbortInvalidParam, "reserved bits set in a message control header")
		}
		p.Values = append(p.Values, PDV{Context: b[4], Command: hdr&1 != 0, Last: hdr&2 != 0, Data: b[6 : 4+n]})
		b = b[4+n:]
	}
	if len(p.Values) == 0 {
		return nil, protoErr(AbortInvalidParam, "P-DATA-TF without presentation data values")
	}
	return p, nil
}

// ---- encoding

// AppendPDU appends p's encoding to dst.
func AppendPDU(dst []byte, p PDU) []byte {
	start := len(dst)
	dst = append(dst, p.pduType(), 0, 0, 0, 0, 0)
	switch p := p.(type) {
	case *AssociateRQ:
		dst = appendAssocHeader(dst, p.ProtocolVersion, p.CalledAE, p.CallingAE)
		dst = appendItem(dst, itemAppContext, []byte(p.AppContext))
		for _, pc := range p.Contexts {
			at := len(dst)
			dst = append(dst, itemPresCtxRQ, 0, 0, 0, pc.ID, 0, 0, 0)
			dst = appendItem(dst, itemAbstract, []byte(pc.AbstractSyntax))
			for _, ts := range pc.TransferSyntaxes {
				dst = appendItem(dst, itemTransfer, []byte(ts))
			}
			binary.BigEndian.PutUint16(dst[at+2:], uint16(len(dst)-at-4))
		}
		dst = p.User.append(dst)
	case *AssociateAC:
		dst = appendAssocHeader(dst, p.ProtocolVersion, p.CalledAE, p.CallingAE)
		dst = appendItem(dst, itemAppContext, []byte(p.AppContext))
		for _, pc := range p.Contexts {
			at := len(dst)
			dst = append(dst, itemPresCtxAC, 0, 0, 0, pc.ID, 0, pc.Result, 0)
			dst = appendItem(dst, itemTransfer, []byte(pc.TransferSyntax))
			binary.BigEndian.PutUint16(dst[at+2:], uint16(len(dst)-at-4))
		}
		dst = p.User.append(dst)
	case *AssociateRJ:
		dst = append(dst, 0, p.Result, p.Source, p.Reason)
	case *PData:
		for _, v := range p.Values {
			var hdr byte
			if v.Command {
				hdr |= 1
			}
			if v.Last {
				hdr |= 2
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(v.Data)+2))
			dst = append(dst, v.Context, hdr)
			dst = append(dst, v.Data...)
		}
	case *ReleaseRQ, *ReleaseRP:
		dst = append(dst, 0, 0, 0, 0)
	case *Abort:
		dst = append(dst, 0, 0, p.Source, p.Reason)
	}
	binary.BigEndian.PutUint32(dst[start+2:], uint32(len(dst)-start-pduHeaderLen))
	return dst
}

func appendAssocHeader(dst []byte, version uint16, called, calling string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = append(dst, 0, 0)
	dst = append(dst, padAE(called)...)
	dst = append(dst, padAE(calling)...)
	return append(dst, make([]byte, 32)...)
}

func padAE(s string) []byte {
	b := []byte(s)
	if len(b) > 16 {
		b = b[:16]
	}
	for len(b) < 16 {
		b = append(b, ' ')
	}
	return b
}

func appendItem(dst []byte, t byte, body []byte) []byte {
	dst = append(dst, t, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...)
}

func (u *UserInfo) append(dst []byte) []byte {
	at := len(dst)
	dst = append(dst, itemUserInfo, 0, 0, 0)
	if u.HasMaxLength {
		dst = appendItem(dst, itemMaxLength, binary.BigEndian.AppendUint32(nil, u.MaxLength))
	}
	if u.ImplementationClass != "" {
		dst = appendItem(dst, itemImplClass, []byte(u.ImplementationClass))
	}
	if u.AsyncOps != nil {
		b := binary.BigEndian.AppendUint16(nil, u.AsyncOps.Invoked)
		dst = appendItem(dst, itemAsyncOps, binary.BigEndian.AppendUint16(b, u.AsyncOps.Performed))
	}
	for _, r := range u.Roles {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClass)))
		b = append(b, r.SOPClass...)
		b = append(b, boolByte(r.SCU), boolByte(r.SCP))
		dst = appendItem(dst, itemRole, b)
	}
	if u.ImplementationVersion != "" {
		dst = appendItem(dst, itemImplVersion, []byte(u.ImplementationVersion))
	}
	for _, o := range u.Other {
		dst = appendItem(dst, o.Type, o.Data)
	}
	binary.BigEndian.PutUint16(dst[at+2:], uint16(len(dst)-at-4))
	return dst
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
