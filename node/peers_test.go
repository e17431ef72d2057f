package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/pacsnet/pacsnet/internal/wire"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

func TestInvites(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	invB, err := b.Invite()
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.ParseInvite(invB)
	if err != nil {
		t.Fatalf("parse a fresh invite: %v", err)
	}
	if p.PeerID != b.ID() || p.Name != "Beta" || p.Recipient != b.keys.id.Recipient().String() || len(p.Addrs) == 0 {
		t.Errorf("invite: %+v", p)
	}

	// tamper re-encodes the invite after changing its signed body.
	tamper := func(f func(inv map[string]any)) string {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(invB, wire.InvitePrefix))
		if err != nil {
			t.Fatal(err)
		}
		var si struct {
			Invite json.RawMessage `json:"invite"`
			Sig    []byte          `json:"sig"`
		}
		if err := json.Unmarshal(raw, &si); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(si.Invite, &body); err != nil {
			t.Fatal(err)
		}
		f(body)
		si.Invite, _ = json.Marshal(body)
		out, _ := json.Marshal(si)
		return wire.InvitePrefix + base64.RawURLEncoding.EncodeToString(out)
	}
	invA, _ := a.Invite()
	for _, tc := range []struct{ name, invite string }{
		{"empty", ""},
		{"no prefix", strings.TrimPrefix(invB, wire.InvitePrefix)},
		{"not base64", wire.InvitePrefix + "!!!"},
		{"not json", wire.InvitePrefix + base64.RawURLEncoding.EncodeToString([]byte("hello"))},
		{"truncated", invB[:len(invB)-10]},
		{"renamed", tamper(func(m map[string]any) { m["name"] = "Evil" })},
		{"other address", tamper(func(m map[string]any) { m["addrs"] = []string{"/ip4/10.0.0.1/tcp/1"} })},
		{"other recipient", tamper(func(m map[string]any) { m["recipient"] = a.keys.id.Recipient().String() })},
		{"other peer id", tamper(func(m map[string]any) { m["peer_id"] = a.ID().String() })},
		{"own invite", invA},
		{"too long", wire.InvitePrefix + strings.Repeat("A", wire.MaxInviteLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.AddPeer(tc.invite, "admin"); !errors.Is(err, ErrBadInvite) {
				t.Errorf("AddPeer: %v, want ErrBadInvite", err)
			}
		})
	}
	if ps := a.Peers(); len(ps) != 0 {
		t.Fatalf("partners after refused invites: %+v", ps)
	}
	if a.partners.IsPartner(b.ID()) {
		t.Fatal("b admitted by a refused invite")
	}

	// Adding the same facility again updates it and does not duplicate it.
	if _, err := a.AddPeer(invB, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddPeer(invB, "admin"); err != nil {
		t.Fatal(err)
	}
	if ps := a.Peers(); len(ps) != 1 || ps[0].ID != b.ID() || ps[0].Name != "Beta" {
		t.Errorf("partners: %+v", ps)
	}
	// The same invite again changes nothing, so nothing is audited twice.
	if e := findAudit(t, a, consent.Entry{Action: consent.ActPeerAdded, Peer: b.ID(), Actor: "admin"}); len(e) != 1 {
		t.Errorf("%d peer-added entries, want 1", len(e))
	}
	// Partners survive a restart.
	a = a.restart(nil)
	if !a.partners.IsPartner(b.ID()) || len(a.Peers()) != 1 {
		t.Errorf("partners after a restart: %+v", a.Peers())
	}
}

// A partner that moved to another address is reachable again once its
// new invite is added.
func TestPartnerMovedAddress(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	b = b.restart(func(c *Config) { c.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"} })
	study, _ := importCT(t, a, 1, 1)
	addPeer(t, a, b) // b's new invite, with its new address
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	if st := fetchWait(t, b, study, 20*time.Second); st.State != FetchDone {
		t.Errorf("fetch from a partner that moved: %+v", st)
	}
}

// Partners are found by peer ID or by name; a second partner under a name
// already taken (in any case) is refused, so a name always names one.
func TestResolvePeer(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	c := newNode(t, "beta")
	d := newNode(t, "Delta")
	addPeer(t, a, b)
	inv, err := c.Invite()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddPeer(inv, "test"); !errors.Is(err, ErrBadInvite) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("adding a second partner called beta: %v, want a refusal", err)
	}
	addPeer(t, a, d)
	for _, tc := range []struct {
		in   string
		want *tnode
		err  string
	}{
		{d.ID().String(), d, ""},
		{"delta", d, ""},
		{"DELTA", d, ""},
		{"Beta", b, ""},
		{b.ID().String(), b, ""},
		{"Gamma", nil, "no partner"},
		{a.ID().String(), nil, "not a partner"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := a.resolvePeer(tc.in)
			if tc.want != nil {
				if err != nil || p.ID != tc.want.ID() {
					t.Errorf("resolve %q: %+v, %v", tc.in, p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolve %q: %v, want an error containing %q", tc.in, err, tc.err)
			}
		})
	}
	study, _ := importCT(t, a, 1, 1)
	if _, err := a.Grant(context.Background(), GrantRequest{To: "Gamma", Study: study}); !errors.Is(err, consent.ErrInvalidRequest) || !strings.Contains(err.Error(), "no partner") {
		t.Errorf("grant to an unknown name: %v", err)
	}
	// Removing the partner frees its name for the replacement.
	if _, err := a.RemovePeer("Beta", "test"); err != nil {
		t.Fatal(err)
	}
	addPeer(t, a, c)
	if p, err := a.resolvePeer("BETA"); err != nil || p.ID != c.ID() {
		t.Errorf("after replacing Beta: %+v, %v", p, err)
	}
}
