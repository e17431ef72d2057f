package auditlog

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/consent"
)

// Source describes the node that writes the audit messages: the
// AuditSourceIdentification, the application participant and the syslog
// HOSTNAME and APP-NAME.
type Source struct {
	Facility string // the facility's name (AuditEnterpriseSiteID)
	NodeID   string // the node's peer ID
	Host     string // the host name or address of the node
	AppName  string // syslog APP-NAME; "pacsnet" when empty
}

// The XML elements and attributes of PS3.15 A.5.1, in schema order.
// Optional attributes are omitted when empty, so a message carries no
// field the entry does not have.

type xmlCode struct {
	Code   string `xml:"csd-code,attr"`
	System string `xml:"codeSystemName,attr"`
	Text   string `xml:"originalText,attr"`
}

func (c code) xml() *xmlCode { return &xmlCode{c.Code, c.System, c.Text} }

type xmlAuditMessage struct {
	XMLName     xml.Name             `xml:"AuditMessage"`
	Event       xmlEvent             `xml:"EventIdentification"`
	Participant []xmlParticipant     `xml:"ActiveParticipant"`
	Source      xmlSource            `xml:"AuditSourceIdentification"`
	Objects     []xmlParticipantObjt `xml:"ParticipantObjectIdentification"`
}

type xmlEvent struct {
	ActionCode         string   `xml:"EventActionCode,attr"`
	DateTime           string   `xml:"EventDateTime,attr"`
	OutcomeIndicator   string   `xml:"EventOutcomeIndicator,attr"`
	ID                 *xmlCode `xml:"EventID"`
	TypeCode           *xmlCode `xml:"EventTypeCode,omitempty"`
	OutcomeDescription string   `xml:"EventOutcomeDescription,omitempty"`
}

type xmlParticipant struct {
	UserID                     string   `xml:"UserID,attr"`
	UserName                   string   `xml:"UserName,attr,omitempty"`
	UserIsRequestor            bool     `xml:"UserIsRequestor,attr"`
	NetworkAccessPointID       string   `xml:"NetworkAccessPointID,attr,omitempty"`
	NetworkAccessPointTypeCode string   `xml:"NetworkAccessPointTypeCode,attr,omitempty"`
	RoleIDCode                 *xmlCode `xml:"RoleIDCode,omitempty"`
}

type xmlSource struct {
	EnterpriseSiteID string `xml:"AuditEnterpriseSiteID,attr,omitempty"`
	SourceID         string `xml:"AuditSourceID,attr"`
}

type xmlParticipantObjt struct {
	ID         string   `xml:"ParticipantObjectID,attr"`
	TypeCode   string   `xml:"ParticipantObjectTypeCode,attr"`
	TypeRole   string   `xml:"ParticipantObjectTypeCodeRole,attr"`
	IDTypeCode *xmlCode `xml:"ParticipantObjectIDTypeCode"`
}

// Participant object type codes and roles (PS3.15 A.5.1, from RFC 3881).
const (
	objTypeSystemObject = "2"
	objRoleReport       = "3" // DICOM's role for a study
	objRoleSecurityRes  = "13"
)

// DICOMXML returns e as one DICOM audit message (PS3.15 A.5.1), an XML
// document whose root is <AuditMessage>. The event is chosen by e.Action
// from the table in events.go; see the package documentation.
//
// Every value is escaped, control characters and invalid UTF-8 are
// removed, and nothing beyond the entry's own fields and src is written:
// entries carry no patient names or IDs, so neither do the messages.
func DICOMXML(e consent.Entry, src Source) ([]byte, error) {
	ev := eventFor(e.Action)
	m := xmlAuditMessage{
		Event: xmlEvent{
			ActionCode:         ev.Action,
			DateTime:           e.Time.UTC().Format(time.RFC3339Nano),
			OutcomeIndicator:   outcome(e, ev),
			ID:                 ev.ID.xml(),
			OutcomeDescription: clean(outcomeDescription(e)),
		},
	}
	if ev.Type != nil {
		m.Event.TypeCode = ev.Type.xml()
	}

	actor := clean(e.Actor)
	user := actor != "" && actor != consent.ActorSystem
	peer := ""
	if e.Peer != "" {
		peer = clean(e.Peer.String())
	}
	peerRequests := !user && peer != "" && ev.PeerRequests
	if user {
		m.Participant = append(m.Participant, xmlParticipant{UserID: actor, UserIsRequestor: true})
	}
	node := xmlParticipant{
		UserID:          first(clean(src.NodeID), clean(src.AppName), "pacsnet"),
		UserName:        clean(src.Facility),
		UserIsRequestor: !user && !peerRequests,
		RoleIDCode:      roleApplication.xml(),
	}
	if h := clean(src.Host); h != "" {
		node.NetworkAccessPointID = h
		node.NetworkAccessPointTypeCode = "1" // machine name
		if _, err := netip.ParseAddr(h); err == nil {
			node.NetworkAccessPointTypeCode = "2" // IP address
		}
	}
	m.Participant = append(m.Participant, node)
	if peer != "" {
		p := xmlParticipant{UserID: peer, UserName: clean(e.PeerName), UserIsRequestor: peerRequests}
		switch ev.Dir {
		case dirIn:
			p.RoleIDCode = roleSource.xml()
		case dirOut:
			p.RoleIDCode = roleDestination.xml()
		}
		m.Participant = append(m.Participant, p)
	}

	m.Source = xmlSource{
		EnterpriseSiteID: first(clean(src.Facility), clean(e.Facility)),
		SourceID:         first(clean(src.Facility), clean(src.NodeID), clean(e.Facility), "pacsnet"),
	}
	if s := clean(e.Study); s != "" {
		m.Objects = append(m.Objects, xmlParticipantObjt{ID: s, TypeCode: objTypeSystemObject,
			TypeRole: objRoleReport, IDTypeCode: idStudyInstanceUID.xml()})
	}
	if g := clean(e.GrantID); g != "" {
		m.Objects = append(m.Objects, xmlParticipantObjt{ID: g, TypeCode: objTypeSystemObject,
			TypeRole: objRoleSecurityRes, IDTypeCode: idGrant.xml()})
	}

	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(m); err != nil {
		return nil, fmt.Errorf("encode audit message %d: %w", e.Seq, err)
	}
	return b.Bytes(), nil
}

// outcomeDescription keeps what the entry says beyond the event: its
// reason code and, for aggregated entries, how many events it stands for.
func outcomeDescription(e consent.Entry) string {
	d := e.Reason
	if e.Count > 1 {
		if d != "" {
			d += " "
		}
		d += "count=" + strconv.FormatUint(e.Count, 10)
	}
	return d
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// clean returns s as valid UTF-8 with control characters and characters
// XML 1.0 cannot carry removed. encoding/xml escapes markup but would
// write some of these as-is or replace them inconsistently; an audit
// collector must not choke on a peer-chosen value.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || !xmlChar(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r != utf8.RuneError && xmlChar(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// xmlChar reports whether r is allowed by XML 1.0 and is not a control
// character (tab and newlines included: attribute values would lose them).
func xmlChar(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return false
	case r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
		return false
	}
	return r <= unicode.MaxRune
}
