package auditlog

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pacsnet/pacsnet/consent"
)

// memLedger is a Reader over entries held in memory, chained and hashed
// as the real ledger does.
type memLedger struct {
	mu      sync.Mutex
	entries []consent.Entry
	reads   int
}

func (l *memLedger) Entries(after uint64, limit int) ([]consent.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if after >= uint64(len(l.entries)) {
		return nil, nil
	}
	out := l.entries[after:min(uint64(len(l.entries)), after+uint64(limit))]
	return append([]consent.Entry(nil), out...), nil
}

func (l *memLedger) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

func (l *memLedger) Head() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

// add appends e, filling Seq, Time, Prev and Hash.
func (l *memLedger) add(t testing.TB, e consent.Entry) consent.Entry {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = uint64(len(l.entries)) + 1
	if e.Time.IsZero() {
		e.Time = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC).Add(time.Duration(e.Seq) * 1234567 * time.Microsecond)
	}
	e.Prev = strings.Repeat("0", 64)
	if n := len(l.entries); n > 0 {
		e.Prev = l.entries[n-1].Hash
	}
	h, err := e.ComputeHash()
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	l.entries = append(l.entries, e)
	return e
}

var testActions = []string{consent.ActImport, consent.ActFetchAllowed, consent.ActFetchDenied, consent.ActGrant,
	consent.ActInstanceRead, consent.ActQuery, "login", "login-failed", "dicom-move", "something-new"}

// addMany appends n varied entries.
func (l *memLedger) addMany(t testing.TB, n int, p peer.ID) {
	for i := 0; i < n; i++ {
		e := consent.Entry{Actor: "alice", Action: testActions[i%len(testActions)],
			Study: fmt.Sprintf("1.2.826.0.1.3680043.8.498.%d", i)}
		if i%3 == 0 {
			e.Actor, e.Peer, e.PeerName, e.GrantID = consent.ActorSystem, p, "St. Elsewhere \"East\"]", "g-"+strconv.Itoa(i)
		}
		if e.Action == consent.ActFetchDenied || e.Action == "login-failed" {
			e.Decision, e.Reason = consent.DecisionDeny, "no-grant"
		}
		l.add(t, e)
	}
}

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rfc5424 is a parsed syslog message.
type rfc5424 struct {
	Pri                              int
	Timestamp                        time.Time
	Hostname, AppName, ProcID, MsgID string
	SD                               map[string]map[string]string // SD-ID → param → value
	SDOrder                          []string
	Msg                              []byte
}

// parse5424 parses one RFC 5424 message strictly (section 6 ABNF).
func parse5424(b []byte) (*rfc5424, error) {
	var m rfc5424
	if len(b) < 2 || b[0] != '<' {
		return nil, errors.New("no PRI")
	}
	end := bytes.IndexByte(b, '>')
	if end < 2 || end > 4 {
		return nil, errors.New("bad PRI")
	}
	pri, err := strconv.Atoi(string(b[1:end]))
	if err != nil || pri > 191 || (end > 2 && b[1] == '0') {
		return nil, errors.New("bad PRIVAL")
	}
	m.Pri = pri
	b = b[end+1:]
	if !bytes.HasPrefix(b, []byte("1 ")) {
		return nil, errors.New("bad VERSION")
	}
	b = b[2:]
	fields := make([]string, 5)
	limits := []int{0, 255, 48, 128, 32}
	for i := range fields {
		sp := bytes.IndexByte(b, ' ')
		if sp < 1 {
			return nil, fmt.Errorf("header field %d missing", i)
		}
		f := string(b[:sp])
		b = b[sp+1:]
		for _, c := range []byte(f) {
			if c < 33 || c > 126 {
				return nil, fmt.Errorf("header field %d: byte %#x", i, c)
			}
		}
		if i > 0 && len(f) > limits[i] {
			return nil, fmt.Errorf("header field %d: %d bytes", i, len(f))
		}
		fields[i] = f
	}
	ts, err := time.Parse(time.RFC3339Nano, fields[0])
	if err != nil {
		return nil, fmt.Errorf("TIMESTAMP: %w", err)
	}
	if dot := strings.IndexByte(fields[0], '.'); dot >= 0 {
		digits := len(fields[0][dot+1:]) - len(strings.TrimLeft(fields[0][dot+1:], "0123456789"))
		if digits < 1 || digits > 6 {
			return nil, errors.New("TIME-SECFRAC has more than 6 digits")
		}
	}
	m.Timestamp = ts
	m.Hostname, m.AppName, m.ProcID, m.MsgID = fields[1], fields[2], fields[3], fields[4]
	m.SD = map[string]map[string]string{}
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	} else {
		for len(b) > 0 && b[0] == '[' {
			b = b[1:]
			id, rest, err := sdName(b)
			if err != nil {
				return nil, fmt.Errorf("SD-ID: %w", err)
			}
			b = rest
			params := map[string]string{}
			for len(b) > 0 && b[0] == ' ' {
				name, rest, err := sdName(b[1:])
				if err != nil {
					return nil, fmt.Errorf("PARAM-NAME: %w", err)
				}
				if len(rest) < 2 || rest[0] != '=' || rest[1] != '"' {
					return nil, errors.New("PARAM-VALUE not quoted")
				}
				rest = rest[2:]
				var v []byte
				for {
					if len(rest) == 0 {
						return nil, errors.New("PARAM-VALUE not closed")
					}
					c := rest[0]
					if c == '\\' && len(rest) > 1 && (rest[1] == '"' || rest[1] == '\\' || rest[1] == ']') {
						v = append(v, rest[1])
						rest = rest[2:]
						continue
					}
					if c == '"' {
						rest = rest[1:]
						break
					}
					if c == ']' {
						return nil, errors.New("unescaped ] in PARAM-VALUE")
					}
					v = append(v, c)
					rest = rest[1:]
				}
				if !utf8.Valid(v) {
					return nil, errors.New("PARAM-VALUE not UTF-8")
				}
				params[name] = string(v)
				b = rest
			}
			if len(b) == 0 || b[0] != ']' {
				return nil, errors.New("SD-ELEMENT not closed")
			}
			b = b[1:]
			m.SD[id] = params
			m.SDOrder = append(m.SDOrder, id)
		}
		if len(m.SDOrder) == 0 {
			return nil, errors.New("no STRUCTURED-DATA")
		}
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return nil, errors.New("no SP before MSG")
		}
		m.Msg = b[1:]
	}
	return &m, nil
}

func sdName(b []byte) (string, []byte, error) {
	i := 0
	for i < len(b) && b[i] >= 33 && b[i] <= 126 && b[i] != '=' && b[i] != ']' && b[i] != '"' && b[i] != ' ' {
		i++
	}
	if i == 0 || i > 32 {
		return "", nil, fmt.Errorf("%d bytes", i)
	}
	return string(b[:i]), b[i:], nil
}

// checkPayload checks a received MSG: a JSON entry whose hash is its own
// and the structured data's, or a well-formed DICOM audit message.
func checkPayload(format Format, msg []byte, hash string) error {
	switch format {
	case FormatJSON:
		var e consent.Entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return fmt.Errorf("MSG: %w", err)
		}
		if h, err := e.ComputeHash(); err != nil || h != e.Hash || e.Hash != hash {
			return fmt.Errorf("MSG hash %s, computed %s, structured data %s", e.Hash, h, hash)
		}
	case FormatDICOM:
		d := xml.NewDecoder(bytes.NewReader(msg))
		var m xmlAuditMessage
		if err := d.Decode(&m); err != nil {
			return fmt.Errorf("MSG: %w", err)
		}
		if m.Event.ID == nil || m.Event.ID.Code == "" {
			return errors.New("MSG: no EventID")
		}
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("MSG: %w", err)
			}
		}
	}
	return nil
}
