package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/crypto"
)

func TestAskRoundTripAndRefusals(t *testing.T) {
	alice, bob, carol := fixedKey(t, 1), fixedKey(t, 2), fixedKey(t, 3)
	a, b, c := peerOf(t, alice), peerOf(t, bob), peerOf(t, carol)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	body := RequestRef{ID: "0123456789abcdef0123456789abcdef"}
	msg, sent, err := SealAsk(alice, b, KindRequestStatus, "", body, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e, err := OpenAsk(msg, a, b, now.Add(30*time.Second))
	if err != nil || e.Nonce != sent.Nonce || e.Kind != KindRequestStatus {
		t.Fatalf("open: %+v, %v", e, err)
	}
	var got RequestRef
	if err := e.DecodeBody(&got); err != nil || got != body {
		t.Fatalf("body: %+v, %v", got, err)
	}
	answer, _, err := SealAsk(bob, a, KindAnswer, e.Nonce, body, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ae, err := OpenAsk(answer, b, a, now); err != nil || ae.InReplyTo != e.Nonce {
		t.Fatalf("answer: %+v, %v", ae, err)
	}

	// Re-sign an edited envelope as alice, to reach the checks after the
	// signature's.
	resign := func(edit func(*Envelope)) []byte {
		var s signedAsk
		json.Unmarshal(msg, &s)
		var env Envelope
		json.Unmarshal(s.Msg, &env)
		edit(&env)
		s.Msg, _ = json.Marshal(&env)
		out, _, _ := SealAsk(alice, b, KindRequestStatus, "", body, now, time.Minute)
		var s2 signedAsk
		json.Unmarshal(out, &s2)
		s2.Msg = s.Msg
		s2.Sig, _ = crypto.Sign(alice, crypto.DomainAsk, s.Msg)
		out, _ = json.Marshal(s2)
		return out
	}
	var tampered signedAsk
	json.Unmarshal(msg, &tampered)
	tampered.Msg = []byte(strings.Replace(string(tampered.Msg), `"request-status"`, `"access-request"`, 1))
	tamperedMsg, _ := json.Marshal(tampered)
	tests := []struct {
		name     string
		msg      []byte
		from, to string
		at       time.Time
		want     string
	}{
		{"not JSON", []byte("hello"), "a", "b", now, "not a signed message: malformed JSON"},
		{"too long", make([]byte, MaxAskLen+1), "a", "b", now, "more than 65536"},
		{"trailing", append(append([]byte{}, msg...), '{', '}'), "a", "b", now, "trailing data"},
		{"unknown field", []byte(strings.Replace(string(msg), `"sig"`, `"x":1,"sig"`, 1)), "a", "b", now, "undecodable or unknown field"},
		{"tampered", tamperedMsg, "a", "b", now, "signature"},
		{"sent by another", msg, "c", "b", now, "sent by another facility"},
		{"for another", msg, "a", "c", now, "addressed to another facility"},
		{"expired", msg, "a", "b", now.Add(time.Minute), "expired"},
		{"from the future", msg, "a", "b", now.Add(-3 * time.Minute), "issued in the future"},
		{"too long-lived", resign(func(e *Envelope) { e.Expires = e.Issued.Add(time.Hour) }), "a", "b", now, "valid for longer than 10m0s"},
		{"bad nonce", resign(func(e *Envelope) { e.Nonce = "00" }), "a", "b", now, "nonce is not 32"},
		{"unknown kind", resign(func(e *Envelope) { e.Kind = "gossip" }), "a", "b", now, "unknown kind"},
		{"format 2", resign(func(e *Envelope) { e.V = 2 }), "a", "b", now, "format 2 is not supported"},
		{"answer without reply-to", resign(func(e *Envelope) { e.Kind = KindAnswer }), "a", "b", now, "only an answer names"},
		{"body not an object", resign(func(e *Envelope) { e.Body = json.RawMessage(`[1]`) }), "a", "b", now, "body is not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch {
			case tc.from == "c":
				_, err = OpenAsk(tc.msg, c, b, tc.at)
			case tc.to == "c":
				_, err = OpenAsk(tc.msg, a, c, tc.at)
			default:
				_, err = OpenAsk(tc.msg, a, b, tc.at)
			}
			if !errors.Is(err, ErrBadAsk) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// A body with an unknown field is refused by DecodeBody.
	m2, _, _ := SealAsk(alice, b, KindRequestStatus, "", map[string]string{"id": body.ID, "patient": "Doe"}, now, 0)
	e2, err := OpenAsk(m2, a, b, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.DecodeBody(&got); !errors.Is(err, ErrBadAsk) || strings.Contains(err.Error(), "Doe") {
		t.Fatalf("unknown body field: %v", err)
	}
}

func FuzzOpenAsk(f *testing.F) {
	alice, bob := fixedKey(f, 1), fixedKey(f, 2)
	a, b := peerOf(f, alice), peerOf(f, bob)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	msg, _, err := SealAsk(alice, b, KindRequestStatus, "", RequestRef{ID: "x"}, now, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte(`{"msg":"","sig":""}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := OpenAsk(in, a, b, now)
		if err != nil {
			if !errors.Is(err, ErrBadAsk) {
				t.Fatalf("refusal does not wrap ErrBadAsk: %v", err)
			}
			return
		}
		var r RequestRef
		_ = e.DecodeBody(&r)
	})
}
