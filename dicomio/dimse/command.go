package dimse

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Command fields (PS3.7 E.1).
const (
	CStoreRQ        uint16 = 0x0001
	CStoreRSP       uint16 = 0x8001
	CGetRQ          uint16 = 0x0010
	CGetRSP         uint16 = 0x8010
	CFindRQ         uint16 = 0x0020
	CFindRSP        uint16 = 0x8020
	CMoveRQ         uint16 = 0x0021
	CMoveRSP        uint16 = 0x8021
	CEchoRQ         uint16 = 0x0030
	CEchoRSP        uint16 = 0x8030
	NEventReportRQ  uint16 = 0x0100
	NEventReportRSP uint16 = 0x8100
	NActionRQ       uint16 = 0x0130
	NActionRSP      uint16 = 0x8130
	CCancelRQ       uint16 = 0x0FFF
)

// Statuses (PS3.7 C, and the service classes of PS3.4).
const (
	StatusSuccess              uint16 = 0x0000
	StatusPending              uint16 = 0xFF00
	StatusPendingWarning       uint16 = 0xFF01 // C-FIND: optional keys not supported
	StatusCancel               uint16 = 0xFE00
	StatusWarningCoercion      uint16 = 0xB000 // C-STORE: coercion of data elements
	StatusWarningSubOps        uint16 = 0xB000 // C-MOVE/C-GET: sub-operations complete, one or more failures
	StatusWarningDuplicate     uint16 = 0x0111 // C-STORE duplicate SOP instance (warning)
	StatusOutOfResources       uint16 = 0xA700
	StatusMoveOutOfResourcesN  uint16 = 0xA701 // C-MOVE: unable to calculate number of matches
	StatusMoveOutOfResourcesSO uint16 = 0xA702 // C-MOVE/C-GET: unable to perform sub-operations
	StatusMoveUnknownDest      uint16 = 0xA801
	StatusIdentifierMismatch   uint16 = 0xA900 // data set does not match SOP class
	StatusCannotUnderstand     uint16 = 0xC000
	StatusSOPClassNotSupported uint16 = 0x0122
	StatusNoSuchSOPClass       uint16 = 0x0118
	StatusProcessingFailure    uint16 = 0x0110
	StatusUnrecognizedOp       uint16 = 0x0211
	StatusDuplicateInvocation  uint16 = 0x0210
	StatusMistypedArgument     uint16 = 0x0212
	StatusInvalidArgument      uint16 = 0x0115
)

// Priority values.
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// noDataSet is the Command Data Set Type saying no data set follows.
const noDataSet uint16 = 0x0101

// Command is a DIMSE command set (group 0000), the fields this package
// reads and writes. Optional US fields are pointers (absent: nil).
type Command struct {
	Field                  uint16 // CommandField
	MessageID              uint16
	MessageIDBeingAnswered uint16
	AffectedSOPClass       string
	RequestedSOPClass      string
	AffectedSOPInstance    string
	RequestedSOPInstance   string
	MoveDestination        string
	Priority               uint16
	HasDataSet             bool
	Status                 uint16
	ErrorComment           string
	OffendingElements      []uint32
	ErrorID                *uint16
	Remaining, Completed   *uint16
	Failed, Warning        *uint16
	MoveOriginatorAE       string
	MoveOriginatorID       *uint16
	EventTypeID            *uint16
	ActionTypeID           *uint16
}

// IsResponse reports whether the command is a response (high bit set).
func (c *Command) IsResponse() bool { return c.Field&0x8000 != 0 }

// Command set tags (element numbers of group 0000).
const (
	tGroupLength         = 0x0000
	tAffectedSOPClass    = 0x0002
	tRequestedSOPClass   = 0x0003
	tCommandField        = 0x0100
	tMessageID           = 0x0110
	tMessageIDAnswered   = 0x0120
	tMoveDestination     = 0x0600
	tPriority            = 0x0700
	tDataSetType         = 0x0800
	tStatus              = 0x0900
	tOffendingElement    = 0x0901
	tErrorComment        = 0x0902
	tErrorID             = 0x0903
	tAffectedSOPInstance = 0x1000
	tRequestedSOPInstanc = 0x1001
	tEventTypeID         = 0x1002
	tActionTypeID        = 0x1008
	tRemaining           = 0x1020
	tCompleted           = 0x1021
	tFailed              = 0x1022
	tWarning             = 0x1023
	tMoveOriginatorAE    = 0x1030
	tMoveOriginatorID    = 0x1031
)

// maxCommandSet bounds a command set: a few UIDs and short strings.
const maxCommandSet = 64 << 10

// DecodeCommand decodes a command set (Implicit VR Little Endian, group
// 0000 only). Unknown elements of group 0000 are skipped; other groups,
// truncation and malformed values are errors that never quote the bytes.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > maxCommandSet {
		return nil, fmt.Errorf("command set of %d bytes is over the %d-byte limit", len(b), maxCommandSet)
	}
	c := &Command{HasDataSet: true}
	var seenField, seenDS bool
	last := -1
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("command set truncated in an element header")
		}
		group, elem := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if group != 0 {
			return nil, fmt.Errorf("command set holds an element of group %04X", group)
		}
		if int(elem) <= last {
			return nil, fmt.Errorf("command set elements are not in ascending order at (0000,%04X)", elem)
		}
		last = int(elem)
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("element (0000,%04X) declares %d bytes; %d remain", elem, n, len(b)-8)
		}
		v := b[8 : 8+n]
		b = b[8+n:]
		var err error
		us := func() (uint16, error) {
			if len(v) != 2 {
				return 0, fmt.Errorf("element (0000,%04X) is %d bytes long; a US is 2", elem, len(v))
			}
			return binary.LittleEndian.Uint16(v), nil
		}
		usp := func() (*uint16, error) {
			x, err := us()
			return &x, err
		}
		switch elem {
		case tCommandField:
			c.Field, err = us()
			seenField = true
		case tMessageID:
			c.MessageID, err = us()
		case tMessageIDAnswered:
			c.MessageIDBeingAnswered, err = us()
		case tAffectedSOPClass:
			c.AffectedSOPClass, err = cmdUID(v, elem)
		case tRequestedSOPClass:
			c.RequestedSOPClass, err = cmdUID(v, elem)
		case tAffectedSOPInstance:
			c.AffectedSOPInstance, err = cmdUID(v, elem)
		case tRequestedSOPInstanc:
			c.RequestedSOPInstance, err = cmdUID(v, elem)
		case tMoveDestination:
			c.MoveDestination, err = cmdText(v, elem, 16)
		case tMoveOriginatorAE:
			c.MoveOriginatorAE, err = cmdText(v, elem, 16)
		case tPriority:
			c.Priority, err = us()
		case tDataSetType:
			var t uint16
			t, err = us()
			c.HasDataSet, seenDS = t != noDataSet, true
		case tStatus:
			c.Status, err = us()
		case tErrorComment:
			c.ErrorComment, err = cmdText(v, elem, 64)
		case tOffendingElement:
			if len(v)%4 != 0 || len(v) > 64 {
				return nil, fmt.Errorf("element (0000,0901) is not a list of tags")
			}
			for i := 0; i < len(v); i += 4 {
				c.OffendingElements = append(c.OffendingElements, uint32(binary.LittleEndian.Uint16(v[i:]))<<16|uint32(binary.LittleEndian.Uint16(v[i+2:])))
			}
		case tErrorID:
			c.ErrorID, err = usp()
		case tEventTypeID:
			c.EventTypeID, err = usp()
		case tActionTypeID:
			c.ActionTypeID, err = usp()
		case tRemaining:
			c.Remaining, err = usp()
		case tCompleted:
			c.Completed, err = usp()
		case tFailed:
			c.Failed, err = usp()
		case tWarning:
			c.Warning, err = usp()
		case tMoveOriginatorID:
			c.MoveOriginatorID, err = usp()
		}
		if err != nil {
			return nil, err
		}
	}
	if !seenField {
		return nil, fmt.Errorf("command set has no Command Field (0000,0100)")
	}
	if !seenDS {
		return nil, fmt.Errorf("command set has no Command Data Set Type (0000,0800)")
	}
	return c, nil
}

func cmdUID(v []byte, elem uint16) (string, error) {
	s := strings.TrimRight(string(v), "\x00 ")
	if len(s) > 64 || !printableASCII(s) || strings.ContainsAny(s, " \\") {
		return "", fmt.Errorf("element (0000,%04X) is not a UID", elem)
	}
	return s, nil
}

func cmdText(v []byte, elem uint16, max int) (string, error) {
	s := strings.TrimSpace(strings.TrimRight(string(v), "\x00"))
	if len(s) > max || !printableASCII(s) {
		return "", fmt.Errorf("element (0000,%04X) is longer than %d characters or not printable", elem, max)
	}
	return s, nil
}

// Encode returns the command set, group length first, elements in
// ascending order, values padded to even length.
func (c *Command) Encode() []byte {
	type el struct {
		tag uint16
		v   []byte
	}
	var els []el
	add := func(tag uint16, v []byte) { els = append(els, el{tag, v}) }
	us := func(x uint16) []byte { return binary.LittleEndian.AppendUint16(nil, x) }
	str := func(tag uint16, s string, pad byte) {
		if s == "" {
			return
		}
		b := []byte(s)
		if len(b)%2 == 1 {
			b = append(b, pad)
		}
		add(tag, b)
	}
	opt := func(tag uint16, x *uint16) {
		if x != nil {
			add(tag, us(*x))
		}
	}
	str(tAffectedSOPClass, c.AffectedSOPClass, 0)
	str(tRequestedSOPClass, c.RequestedSOPClass, 0)
	add(tCommandField, us(c.Field))
	if c.IsResponse() || c.Field == CCancelRQ { // C-CANCEL-RQ names the request it cancels (PS3.7 9.3.2.3)
		add(tMessageIDAnswered, us(c.MessageIDBeingAnswered))
	} else {
		add(tMessageID, us(c.MessageID))
	}
	str(tMoveDestination, c.MoveDestination, ' ')
	if !c.IsResponse() && (c.Field == CStoreRQ || c.Field == CFindRQ || c.Field == CMoveRQ || c.Field == CGetRQ) {
		add(tPriority, us(c.Priority))
	}
	ds := noDataSet
	if c.HasDataSet {
		ds = 0x0000
	}
	add(tDataSetType, us(ds))
	if c.IsResponse() {
		add(tStatus, us(c.Status))
	}
	if len(c.OffendingElements) > 0 {
		var b []byte
		for _, t := range c.OffendingElements {
			b = binary.LittleEndian.AppendUint16(b, uint16(t>>16))
			b = binary.LittleEndian.AppendUint16(b, uint16(t))
		}
		add(tOffendingElement, b)
	}
	str(tErrorComment, c.ErrorComment, ' ')
	opt(tErrorID, c.ErrorID)
	str(tAffectedSOPInstance, c.AffectedSOPInstance, 0)
	str(tRequestedSOPInstanc, c.RequestedSOPInstance, 0)
	opt(tEventTypeID, c.EventTypeID)
	opt(tActionTypeID, c.ActionTypeID)
	opt(tRemaining, c.Remaining)
	opt(tCompleted, c.Completed)
	opt(tFailed, c.Failed)
	opt(tWarning, c.Warning)
	str(tMoveOriginatorAE, c.MoveOriginatorAE, ' ')
	opt(tMoveOriginatorID, c.MoveOriginatorID)
	sort.Slice(els, func(i, j int) bool { return els[i].tag < els[j].tag })

	var body []byte
	for _, e := range els {
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint16(body, e.tag)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(e.v)))
		body = append(body, e.v...)
	}
	out := make([]byte, 0, 12+len(body))
	out = append(out, 0, 0, 0, 0, 4, 0, 0, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// U16 returns a pointer to x, for the optional fields of Command.
func U16(x uint16) *uint16 { return &x }
