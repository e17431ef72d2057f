package consent

import (
	"fmt"
	"io"
	"testing"
	"time"
)

func TestReasonOf(t *testing.T) {
	tests := []struct {
		err  error
		want DenyReason
	}{
		{ErrNoGrant, "no-grant"},
		{ErrWrongGrantee, "wrong-grantee"},
		{ErrOutOfScope, "out-of-scope"},
		{ErrExpired, "expired"},
		{ErrNotYetValid, "not-yet-valid"},
		{ErrRevoked, "revoked"},
		{ErrActionNotGranted, "action-not-granted"},
		{fmt.Errorf("grant 0123: %w", ErrRevoked), "revoked"},
		{fmt.Errorf("outer: %w", fmt.Errorf("grant 0123: %w", ErrExpired)), "expired"},
		{ErrInvalidRequest, "denied"},
		{io.EOF, "denied"},
		{nil, "denied"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := ReasonOf(tt.err); got != tt.want {
				t.Errorf("ReasonOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestReasonOfCheck runs real refusals of Ledger.Check through ReasonOf, so
// a new decision sentinel without a reason shows up here.
func TestReasonOfCheck(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, NotBefore: t0.Add(time.Minute), Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	id := g.Grant.ID
	tests := []struct {
		name   string
		before func()
		err    func() error
		want   DenyReason
	}{
		{"not yet valid", nil, func() error { return l.Check(bob, id, studyA, ActionFetch) }, ReasonNotYetValid},
		{"unknown grant", func() { clock.Advance(2 * time.Minute) }, func() error { return l.Check(bob, "00000000000000000000000000000000", studyA, ActionFetch) }, ReasonNoGrant},
		{"wrong grantee", nil, func() error { return l.Check(carol, id, studyA, ActionFetch) }, ReasonWrongGrantee},
		{"out of scope", nil, func() error { return l.Check(bob, id, studyB, ActionFetch) }, ReasonOutOfScope},
		{"action", nil, func() error { return l.Check(bob, id, studyA, "delete") }, ReasonActionNotGranted},
		{"expired", func() { clock.Advance(time.Hour) }, func() error { return l.Check(bob, id, studyA, ActionFetch) }, ReasonExpired},
		{"revoked", func() {
			clock.Set(t0.Add(2 * time.Minute))
			if _, err := l.Revoke(id, "", ""); err != nil {
				t.Fatal(err)
			}
		}, func() error { return l.Check(bob, id, studyA, ActionFetch) }, ReasonRevoked},
	}
	for _, tt := range tests {
		if tt.before != nil {
			tt.before()
		}
		err := tt.err()
		if err == nil {
			t.Fatalf("%s: Check allowed", tt.name)
		}
		if got := ReasonOf(err); got != tt.want {
			t.Errorf("%s: ReasonOf(%v) = %q, want %q", tt.name, err, got, tt.want)
		}
	}
}
