package auditlog

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

// decodeAudit reads a DICOM audit message back, failing on XML that is
// not well-formed or has anything after the root element.
func decodeAudit(t testing.TB, b []byte) xmlAuditMessage {
	t.Helper()
	var m xmlAuditMessage
	d := xml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after root: %v", err)
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) > 0 {
			t.Fatalf("after root: %v", tok)
		}
	}
	return m
}

func TestDICOMXML(t *testing.T) {
	p := newPeer(t)
	when := time.Date(2026, 12, 4, 10, 11, 12, 345678000, time.UTC)
	src := Source{Facility: "General Hospital", NodeID: "12D3KooNode", Host: "10.0.0.7", AppName: "pacsnet"}
	tests := []struct {
		name        string
		e           consent.Entry
		eventID     string
		action      string
		outcome     string
		typeCode    string
		users       []string // ActiveParticipant UserIDs in order
		requestor   string
		objects     []string // ParticipantObjectIDTypeCode codes
		description string
	}{
		{
			name:    "import by a user",
			e:       consent.Entry{Actor: "alice", Action: consent.ActImport, Study: "1.2.3", Decision: consent.DecisionAllow},
			eventID: "110104", action: "C", outcome: "0",
			users: []string{"alice", "12D3KooNode"}, requestor: "alice", objects: []string{"110180"},
		},
		{
			name:    "fetch denied to a peer",
			e:       consent.Entry{Actor: consent.ActorSystem, Peer: p, PeerName: "Clinic", Action: consent.ActFetchDenied, Study: "1.2.3", GrantID: "g1", Decision: consent.DecisionDeny, Reason: "no-grant", Count: 3},
			eventID: "110113", action: "E", outcome: "4", typeCode: "110132",
			users: []string{"12D3KooNode", p.String()}, requestor: p.String(), objects: []string{"110180", "grant"},
			description: "no-grant count=3",
		},
		{
			name:    "fetch failed",
			e:       consent.Entry{Actor: "bob", Peer: p, Action: consent.ActFetchFailed, Study: "1.2.3"},
			eventID: "110104", action: "C", outcome: "8",
			users: []string{"bob", "12D3KooNode", p.String()}, requestor: "bob", objects: []string{"110180"},
		},
		{
			name:    "login",
			e:       consent.Entry{Actor: "carol", Action: "login", Reason: "session=s1"},
			eventID: "110114", action: "E", outcome: "0", typeCode: "110122",
			users: []string{"carol", "12D3KooNode"}, requestor: "carol", description: "session=s1",
		},
		{
			name:    "login failed",
			e:       consent.Entry{Action: "login-failed", Decision: consent.DecisionDeny},
			eventID: "110114", action: "E", outcome: "4", typeCode: "110122",
			users: []string{"12D3KooNode"}, requestor: "12D3KooNode",
		},
		{
			name:    "logout",
			e:       consent.Entry{Actor: "carol", Action: "logout"},
			eventID: "110114", action: "E", outcome: "0", typeCode: "110123",
			users: []string{"carol", "12D3KooNode"}, requestor: "carol",
		},
		{
			name:    "instance read",
			e:       consent.Entry{Actor: "dave", Action: consent.ActInstanceRead, Study: "1.2.4"},
			eventID: "110103", action: "R", outcome: "0",
			users: []string{"dave", "12D3KooNode"}, requestor: "dave", objects: []string{"110180"},
		},
		{
			name:    "query",
			e:       consent.Entry{Actor: "dave", Action: consent.ActQuery},
			eventID: "110112", action: "E", outcome: "0",
			users: []string{"dave", "12D3KooNode"}, requestor: "dave",
		},
		{
			name:    "unknown action",
			e:       consent.Entry{Action: "node-started"},
			eventID: "110100", action: "E", outcome: "0",
			users: []string{"12D3KooNode"}, requestor: "12D3KooNode",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.e.Seq, tt.e.Time = 7, when
			b, err := DICOMXML(tt.e, src)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeAudit(t, b)
			ev := m.Event
			if ev.ID.Code != tt.eventID || ev.ID.System != "DCM" || ev.ID.Text == "" {
				t.Errorf("EventID %+v, want %s", ev.ID, tt.eventID)
			}
			if ev.ActionCode != tt.action || ev.OutcomeIndicator != tt.outcome {
				t.Errorf("action %q outcome %q, want %q %q", ev.ActionCode, ev.OutcomeIndicator, tt.action, tt.outcome)
			}
			if ev.DateTime != "2026-12-04T10:11:12.345678Z" {
				t.Errorf("EventDateTime %q", ev.DateTime)
			}
			gotType := ""
			if ev.TypeCode != nil {
				gotType = ev.TypeCode.Code
			}
			if gotType != tt.typeCode {
				t.Errorf("EventTypeCode %q, want %q", gotType, tt.typeCode)
			}
			if ev.OutcomeDescription != tt.description {
				t.Errorf("EventOutcomeDescription %q, want %q", ev.OutcomeDescription, tt.description)
			}
			var users []string
			requestors := 0
			for _, ap := range m.Participant {
				users = append(users, ap.UserID)
				if ap.UserIsRequestor {
					requestors++
					if ap.UserID != tt.requestor {
						t.Errorf("requestor %q, want %q", ap.UserID, tt.requestor)
					}
				}
			}
			if strings.Join(users, ",") != strings.Join(tt.users, ",") || requestors != 1 {
				t.Errorf("participants %v (%d requestors), want %v", users, requestors, tt.users)
			}
			var objs []string
			for _, o := range m.Objects {
				objs = append(objs, o.IDTypeCode.Code)
				if o.IDTypeCode.Code == "110180" && (o.ID != tt.e.Study || o.TypeCode != "2" || o.TypeRole != "3") {
					t.Errorf("study object %+v", o)
				}
			}
			if strings.Join(objs, ",") != strings.Join(tt.objects, ",") {
				t.Errorf("objects %v, want %v", objs, tt.objects)
			}
			if m.Source.SourceID != "General Hospital" || m.Source.EnterpriseSiteID != "General Hospital" {
				t.Errorf("source %+v", m.Source)
			}
		})
	}
}

func TestDICOMXMLEscapes(t *testing.T) {
	e := consent.Entry{Seq: 1, Time: time.Unix(0, 0), Actor: "a<b>&\"c'\x00\x1b\t\n\u0085\xff", Action: "x",
		Study: "]]><evil/>", Reason: "<!-- -->"}
	b, err := DICOMXML(e, Source{Facility: "F&G\x07", Host: "host name"})
	if err != nil {
		t.Fatal(err)
	}
	m := decodeAudit(t, b)
	if got := m.Participant[0].UserID; got != "a<b>&\"c'" {
		t.Errorf("actor %q", got)
	}
	if m.Objects[0].ID != "]]><evil/>" || m.Event.OutcomeDescription != "<!-- -->" {
		t.Errorf("study %q reason %q", m.Objects[0].ID, m.Event.OutcomeDescription)
	}
	if m.Source.SourceID != "F&G" {
		t.Errorf("source %q", m.Source.SourceID)
	}
	if bytes.Contains(b, []byte("<evil")) {
		t.Errorf("unescaped markup: %s", b)
	}
}

// TestDICOMXMLNoExtraFields: an entry with nothing but an action gives
// a message without participant objects, names or descriptions.
func TestDICOMXMLNoExtraFields(t *testing.T) {
	b, err := DICOMXML(consent.Entry{Seq: 1, Time: time.Unix(0, 0), Action: consent.ActQuery}, Source{})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"ParticipantObject", "UserName", "EventOutcomeDescription", "NetworkAccessPoint", "AuditEnterpriseSiteID"} {
		if bytes.Contains(b, []byte(absent)) {
			t.Errorf("%s in %s", absent, b)
		}
	}
}
