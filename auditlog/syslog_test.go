package auditlog

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

func TestSyslog(t *testing.T) {
	p := newPeer(t)
	var l memLedger
	allow := l.add(t, consent.Entry{Actor: "alice", Action: consent.ActImport, Study: "1.2.3", Decision: consent.DecisionAllow,
		Time: time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))})
	deny := l.add(t, consent.Entry{Peer: p, PeerName: "Clinic", Action: consent.ActFetchDenied, Decision: consent.DecisionDeny})
	odd := l.add(t, consent.Entry{Action: `we"ird]\act`})
	failed := l.add(t, consent.Entry{Actor: "bob", Action: consent.ActFetchFailed, Reason: "disk-full"})
	tests := []struct {
		name     string
		e        consent.Entry
		src      Source
		format   Format
		pri      int
		host     string
		app      string
		msgID    string
		ts       string
		sdAction string
	}{
		{"allow json", allow, Source{Host: "pacs1.example.org"}, FormatJSON, 85, "pacs1.example.org", "pacsnet", "pacsnet-audit", "2026-12-04T09:00:00.123456Z", consent.ActImport},
		{"allow dicom", allow, Source{Host: "pacs1", AppName: "pacsnet-node"}, FormatDICOM, 85, "pacs1", "pacsnet-node", "DICOM+RFC3881", "2026-12-04T09:00:00.123456Z", consent.ActImport},
		{"deny json", deny, Source{}, FormatJSON, 84, "-", "pacsnet", "pacsnet-audit", "", consent.ActFetchDenied},
		{"deny dicom", deny, Source{Host: "h\x00 ö"}, FormatDICOM, 84, "h", "pacsnet", "DICOM+RFC3881", "", consent.ActFetchDenied},
		{"failure", failed, Source{}, FormatJSON, 83, "-", "pacsnet", "pacsnet-audit", "", consent.ActFetchFailed},
		{"escaped sd", odd, Source{AppName: strings.Repeat("a", 100)}, FormatJSON, 85, "-", strings.Repeat("a", 48), "pacsnet-audit", "", `we"ird]\act`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Syslog(tt.e, tt.src, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsAny(b, "\n\r") {
				t.Errorf("newline in %q", b)
			}
			m, err := parse5424(b)
			if err != nil {
				t.Fatalf("parse %q: %v", b, err)
			}
			if m.Pri != tt.pri || m.Hostname != tt.host || m.AppName != tt.app || m.MsgID != tt.msgID {
				t.Errorf("header %d %q %q %q, want %d %q %q %q", m.Pri, m.Hostname, m.AppName, m.MsgID, tt.pri, tt.host, tt.app, tt.msgID)
			}
			if tt.ts != "" && m.Timestamp.Format("2006-01-02T15:04:05.000000Z07:00") != tt.ts {
				t.Errorf("timestamp %v, want %s", m.Timestamp, tt.ts)
			}
			if !m.Timestamp.Equal(tt.e.Time.Truncate(time.Microsecond)) || m.Timestamp.Location() != time.UTC {
				t.Errorf("timestamp %v, entry %v", m.Timestamp, tt.e.Time)
			}
			sd := m.SD[SDID]
			if len(m.SDOrder) != 1 || sd["action"] != tt.sdAction || sd["hash"] != tt.e.Hash || sd["seq"] != itoa(tt.e.Seq) {
				t.Errorf("structured data %v", m.SD)
			}
			switch tt.format {
			case FormatJSON:
				var got consent.Entry
				if err := json.Unmarshal(m.Msg, &got); err != nil {
					t.Fatal(err)
				}
				if h, _ := got.ComputeHash(); h != tt.e.Hash || got.Hash != tt.e.Hash {
					t.Errorf("JSON entry does not hash to its Hash: %s", m.Msg)
				}
			case FormatDICOM:
				decodeAudit(t, m.Msg)
				if !bytes.HasPrefix(m.Msg, []byte("<?xml")) {
					t.Errorf("MSG %q", m.Msg)
				}
			}
		})
	}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"json": FormatJSON, "dicom": FormatDICOM, "": FormatJSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
		if in != "" && want.String() != in {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) accepted")
	}
	if _, err := Syslog(consent.Entry{}, Source{}, Format(9)); err == nil {
		t.Error("Syslog with an unknown format")
	}
}
