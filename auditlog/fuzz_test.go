package auditlog

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pacsnet/pacsnet/consent"
)

// FuzzSyslog feeds arbitrary field values (as a peer could choose them)
// and checks that both formats give a valid RFC 5424 message and a
// well-formed DICOM audit message.
func FuzzSyslog(f *testing.F) {
	f.Add("alice", "import", "1.2.3", "g1", "allow", "reason", "Clinic", "Facility", "host", "app", int64(0), uint64(1), []byte{})
	f.Add("a\"]\\", "login-failed", "]]>", "<g>", "deny", "\x00\xff", "\u2028", "&amp;", "h o\x7f", "", int64(-1), uint64(0), []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, actor, action, study, grant, decision, reason, peerName, facility, host, app string, nanos int64, seq uint64, peerBytes []byte) {
		e := consent.Entry{Seq: seq, Time: time.Unix(0, nanos), Actor: actor, Action: action, Study: study,
			GrantID: grant, Decision: decision, Reason: reason, PeerName: peerName, Facility: facility,
			Peer: peer.ID(peerBytes), Hash: reason, Count: seq}
		src := Source{Facility: facility, NodeID: peerName, Host: host, AppName: app}
		for _, format := range []Format{FormatJSON, FormatDICOM} {
			b, err := Syslog(e, src, format)
			if err != nil {
				// JSON cannot encode some times (years beyond 9999).
				if format == FormatJSON {
					continue
				}
				t.Fatalf("%v: %v", format, err)
			}
			m, err := parse5424(b)
			if err != nil {
				t.Fatalf("%v: parse %q: %v", format, b, err)
			}
			if m.SD[SDID]["action"] != sdUnescaped(action) {
				t.Errorf("action %q came back as %q", action, m.SD[SDID]["action"])
			}
			if format == FormatDICOM {
				decodeAudit(t, m.Msg)
			}
		}
		x, err := DICOMXML(e, src)
		if err != nil {
			t.Fatal(err)
		}
		decodeAudit(t, x)
	})
}

// sdUnescaped is what a PARAM-VALUE built from s reads back as.
func sdUnescaped(s string) string { return clean(s) }
