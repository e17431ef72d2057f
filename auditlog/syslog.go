package auditlog

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pacsnet/pacsnet/consent"
)

// Format is what a syslog message carries in its MSG part.
type Format int

const (
	// FormatJSON carries the entry as JSON, exactly as the ledger stores
	// it, so that its hash can be checked again (Entry.ComputeHash).
	FormatJSON Format = iota
	// FormatDICOM carries the DICOM audit message of [DICOMXML], as IHE
	// ATNA (ITI-20) audit record repositories expect.
	FormatDICOM
)

// ParseFormat reads "json" or "dicom", the values of audit.syslog.format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "json", "":
		return FormatJSON, nil
	case "dicom":
		return FormatDICOM, nil
	}
	return 0, fmt.Errorf("parse audit format %q: want json or dicom", s)
}

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatDICOM:
		return "dicom"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Syslog header values.
const (
	// facilityAuthpriv (10, security/authorization) is the facility IHE
	// ITI-20 asks audit messages to use.
	facilityAuthpriv = 10
	severityError    = 3 // a failure (EventOutcomeIndicator 8)
	severityWarning  = 4 // a denial (EventOutcomeIndicator 4)
	severityNotice   = 5 // everything else
	// SDID is the SD-ID of the structured data element every message
	// carries. 32473 is the private enterprise number RFC 5612 reserves
	// for documentation and examples; pacsnet has none of its own.
	SDID = "pacsnet@32473"
	// MSGIDs: ITI-20 names DICOM-schema messages "DICOM+RFC3881".
	msgIDDICOM = "DICOM+RFC3881"
	msgIDJSON  = "pacsnet-audit"
)

// Field limits of RFC 5424 section 6.
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
)

// Syslog returns e as one RFC 5424 syslog message, without framing or a
// trailing newline:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [pacsnet@32473 seq="…" hash="…" action="…"] MSG
//
// PRI is facility 10 (authpriv) with severity notice, warning for a
// denial or error for a failure. TIMESTAMP is e.Time in UTC with
// microseconds (RFC 5424 allows six fractional digits). PROCID is this
// process's ID. MSG is the entry as JSON or its DICOM audit message, by
// format, without a BOM (RFC 5424 MSG-ANY): collectors that do not
// strip a BOM would keep it in front of every message.
func Syslog(e consent.Entry, src Source, format Format) ([]byte, error) {
	var msg []byte
	var msgID string
	switch format {
	case FormatJSON:
		js, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
		}
		msg, msgID = js, msgIDJSON
	case FormatDICOM:
		x, err := DICOMXML(e, src)
		if err != nil {
			return nil, err
		}
		// One line: the declaration without the newline encoding/xml's
		// Header carries.
		x = bytes.Replace(x, []byte(xml.Header), []byte(strings.TrimSuffix(xml.Header, "\n")), 1)
		msg, msgID = x, msgIDDICOM
	default:
		return nil, fmt.Errorf("encode audit entry %d: unknown format %d", e.Seq, format)
	}

	sev := severityNotice
	switch outcome(e, eventFor(e.Action)) {
	case outcomeMinorFailure:
		sev = severityWarning
	case outcomeSeriousFailed:
		sev = severityError
	}
	var b bytes.Buffer
	b.Grow(len(msg) + 256)
	fmt.Fprintf(&b, "<%d>1 %s %s %s %s %s [%s seq=\"%d\" hash=\"%s\" action=\"%s\"] ",
		facilityAuthpriv*8+sev,
		e.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		headerField(src.Host, maxHostname, "-"),
		headerField(src.AppName, maxAppName, "pacsnet"),
		headerField(strconv.Itoa(os.Getpid()), maxProcID, "-"),
		msgID,
		SDID, e.Seq, sdEscape(e.Hash), sdEscape(e.Action))
	b.Write(msg)
	return b.Bytes(), nil
}

// headerField keeps the printable US-ASCII (33–126) of s, cut to max
// bytes; the default when nothing is left.
func headerField(s string, max int, def string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		if c := s[i]; c >= 33 && c <= 126 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return def
	}
	return b.String()
}

// sdEscape makes s a PARAM-VALUE: valid UTF-8 without control characters,
// with '"', '\' and ']' escaped (RFC 5424 section 6.3.3).
func sdEscape(s string) string {
	s = clean(s)
	if !strings.ContainsAny(s, "\"\\]") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == '"' || r == '\\' || r == ']' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
