package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
)

// Kinds of signed messages on the ask protocol (exchange.AskProtocol).
// Each message is answered by one of kind KindAnswer.
const (
	KindAccessRequest = "access-request" // body: consent.AccessRequest; answer: consent.RequestStatus
	KindRequestStatus = "request-status" // body: RequestRef; answer: consent.RequestStatus
	KindPatientQuery  = "patient-query"  // body: PatientQuery; answer: QueryAnswer
	KindHolders       = "holders"        // body: HoldersQuery; answer: HoldersAnswer
	KindAnswer        = "answer"         // the answer to a message (InReplyTo names its nonce)
)

// AskFormat is the envelope's format version.
const AskFormat = 1

// Limits of a signed message: its lifetime (Expires - Issued), how far
// ahead of our clock Issued may be, and its encoded size.
const (
	MaxAskLifetime = 10 * time.Minute
	MaxAskSkew     = 2 * time.Minute
	MaxAskLen      = 64 << 10
)

// Envelope is a signed message between two facilities: who sent it to
// whom, when, until when it counts, a nonce so that it is accepted once,
// and its body (JSON; its type depends on Kind). The signature (domain
// [crypto.DomainAsk]) covers the envelope's exact JSON bytes, which travel
// inside the signed form: nothing is re-encoded before it is verified.
type Envelope struct {
	V         int             `json:"v"`
	Kind      string          `json:"kind"`
	From      peer.ID         `json:"from"`
	To        peer.ID         `json:"to"`
	Nonce     string          `json:"nonce"` // 32 lower-case hex digits (128 random bits)
	Issued    time.Time       `json:"issued"`
	Expires   time.Time       `json:"expires"`
	InReplyTo string          `json:"in_reply_to,omitempty"` // an answer: the nonce of the message it answers
	Body      json.RawMessage `json:"body"`

	signed []byte // the signed message OpenAsk opened
}

// Signed returns the signed message the envelope was opened from (nil for
// one built by SealAsk): the sender's proof of what it said.
func (e *Envelope) Signed() []byte { return e.signed }

type signedAsk struct {
	Msg []byte `json:"msg"` // the Envelope's JSON
	Sig []byte `json:"sig"`
}

// ErrBadAsk is wrapped by every refusal of [OpenAsk] and [DecodeBody].
var ErrBadAsk = errors.New("invalid signed message")

func badAsk(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrBadAsk)
}

// NewNonce returns 128 random bits as 32 hex digits.
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// SealAsk signs a message of kind from key's facility to to, valid from
// now for lifetime (at most MaxAskLifetime), with a fresh nonce; body is
// encoded as JSON. It returns the signed bytes and the envelope as sent.
func SealAsk(key lcrypto.PrivKey, to peer.ID, kind, inReplyTo string, body any, now time.Time, lifetime time.Duration) ([]byte, *Envelope, error) {
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if lifetime <= 0 || lifetime > MaxAskLifetime {
		lifetime = MaxAskLifetime
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	now = now.UTC().Truncate(time.Millisecond)
	e := &Envelope{V: AskFormat, Kind: kind, From: from, To: to, Nonce: nonce, Issued: now, Expires: now.Add(lifetime),
		InReplyTo: inReplyTo, Body: b}
	msg, err := json.Marshal(e)
	if err != nil {
		return nil, nil, err
	}
	sig, err := crypto.Sign(key, crypto.DomainAsk, msg)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(signedAsk{Msg: msg, Sig: sig})
	if err != nil {
		return nil, nil, err
	}
	if len(out) > MaxAskLen {
		return nil, nil, badAsk("message of %d bytes, more than %d", len(out), MaxAskLen)
	}
	return out, e, nil
}

// OpenAsk checks a signed message that from sent to self and returns its
// envelope: the size, the strict encoding, the format, a known kind, the
// nonce, that it is from from (the authenticated peer) and for self, that
// it is signed by from's key, and that now is within its validity (Issued
// at most MaxAskSkew ahead of now; now before Expires; a lifetime of at
// most MaxAskLifetime). It does not know which nonces it saw: the caller
// rejects replays. Errors wrap [ErrBadAsk] and never quote the message.
func OpenAsk(b []byte, from, self peer.ID, now time.Time) (*Envelope, error) {
	if len(b) > MaxAskLen {
		return nil, badAsk("message of %d bytes, more than %d", len(b), MaxAskLen)
	}
	var s signedAsk
	if err := strictJSON(b, &s); err != nil {
		return nil, badAsk("not a signed message: %v", err)
	}
	var e Envelope
	if err := strictJSON(s.Msg, &e); err != nil {
		return nil, badAsk("envelope: %v", err)
	}
	switch {
	case e.V != AskFormat:
		return nil, badAsk("format %d is not supported (this build reads %d)", e.V, AskFormat)
	case e.Kind != KindAccessRequest && e.Kind != KindRequestStatus && e.Kind != KindPatientQuery && e.Kind != KindHolders && e.Kind != KindAnswer:
		return nil, badAsk("unknown kind")
	case !isNonce(e.Nonce):
		return nil, badAsk("nonce is not 32 lower-case hex digits")
	case e.InReplyTo != "" && !isNonce(e.InReplyTo):
		return nil, badAsk("in_reply_to is not a nonce")
	case (e.Kind == KindAnswer) != (e.InReplyTo != ""):
		return nil, badAsk("only an answer names the message it answers, and it must")
	case e.From != from:
		return nil, badAsk("sent by another facility than it names")
	case e.To != self:
		return nil, badAsk("addressed to another facility")
	case e.Issued.IsZero() || e.Expires.IsZero() || !e.Expires.After(e.Issued):
		return nil, badAsk("issued and expires missing or out of order")
	case e.Expires.Sub(e.Issued) > MaxAskLifetime:
		return nil, badAsk("valid for longer than %s", MaxAskLifetime)
	case e.Issued.After(now.Add(MaxAskSkew)):
		return nil, badAsk("issued in the future (clocks more than %s apart?)", MaxAskSkew)
	case !now.Before(e.Expires):
		return nil, badAsk("expired")
	case len(e.Body) == 0 || e.Body[0] != '{':
		return nil, badAsk("body is not a JSON object")
	}
	if err := crypto.VerifyPeer(from, crypto.DomainAsk, s.Msg, s.Sig); err != nil {
		return nil, badAsk("signature: %v", err)
	}
	e.signed = b
	return &e, nil
}

// DecodeBody decodes the envelope's body strictly (no unknown fields, no
// trailing data) into v.
func (e *Envelope) DecodeBody(v any) error {
	if err := strictJSON(e.Body, v); err != nil {
		return badAsk("%s body: %v", e.Kind, err)
	}
	return nil
}

// RequestRef names an access request (KindRequestStatus).
type RequestRef struct {
	ID string `json:"id"`
}

func isNonce(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// strictJSON decodes one JSON value with no unknown fields and nothing
// after it; its errors name no input bytes.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("field %s has the wrong type", te.Field)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("incomplete JSON")
		}
		return errors.New("undecodable or unknown field")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}
