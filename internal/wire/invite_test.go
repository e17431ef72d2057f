package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"

	"github.com/pacsnet/pacsnet/crypto"
)

func testInvite(t testing.TB, key lcrypto.PrivKey) Invite {
	t.Helper()
	return Invite{
		Name:      "Alpha Hospital",
		PeerID:    peerOf(t, key),
		Recipient: testRecipient(t),
		Addrs:     []string{"/ip4/127.0.0.1/tcp/4801", "/ip4/127.0.0.1/udp/4801/quic-v1"},
		Created:   t0,
	}
}

func TestEncodeInviteParses(t *testing.T) {
	key, _, err := lcrypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := testInvite(t, key)
	s, err := EncodeInvite(key, want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, InvitePrefix) || len(s) > MaxInviteLen {
		t.Fatalf("invite of %d bytes starting %.20q", len(s), s)
	}
	for _, in := range []string{s, "  " + s + "\n"} {
		got, err := ParseInvite(in)
		if err != nil {
			t.Fatalf("ParseInvite: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	}
}

// TestInviteGolden pins the invite encoding: invites are pasted between
// facilities running different versions. Ed25519 signatures are
// deterministic, so the same key and fields give the same string.
func TestInviteGolden(t *testing.T) {
	key := fixedKey(t, 1)
	s, err := EncodeInvite(key, testInvite(t, key))
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/invite.txt"
	if *update {
		if err := os.WriteFile(golden, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if s != strings.TrimSpace(string(want)) {
		t.Errorf("invite differs from %s (run with -update only for a deliberate format change):\n%s", golden, s)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, InvitePrefix))
	if err != nil {
		t.Fatal(err)
	}
	var si signedInvite
	if err := json.Unmarshal(raw, &si); err != nil {
		t.Fatal(err)
	}
	const body = `{"format":1,"name":"Alpha Hospital","peer_id":"12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5","recipient":"`
	if !strings.HasPrefix(string(si.Invite), body) || !strings.HasSuffix(string(si.Invite), `","addrs":["/ip4/127.0.0.1/tcp/4801","/ip4/127.0.0.1/udp/4801/quic-v1"],"created":"2026-03-14T09:00:00Z"}`) {
		t.Errorf("signed body: %s", si.Invite)
	}
}

func TestParseInviteRejects(t *testing.T) {
	key, other := fixedKey(t, 1), fixedKey(t, 2)
	good := testInvite(t, key)
	valid, err := EncodeInvite(key, good)
	if err != nil {
		t.Fatal(err)
	}
	// reencode signs a changed body with signer, or keeps the original
	// signature when signer is nil.
	reencode := func(signer lcrypto.PrivKey, f func(body map[string]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(valid, InvitePrefix))
		var si signedInvite
		if err := json.Unmarshal(raw, &si); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(si.Invite, &body); err != nil {
			t.Fatal(err)
		}
		f(body)
		si.Invite = mustJSON(t, body)
		if signer != nil {
			if si.Sig, err = crypto.Sign(signer, crypto.DomainInvite, si.Invite); err != nil {
				t.Fatal(err)
			}
		}
		return InvitePrefix + base64.RawURLEncoding.EncodeToString(mustJSON(t, si))
	}
	encode := func(f func(inv *Invite)) string {
		inv := good
		f(&inv)
		s, err := EncodeInvite(key, inv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name, invite, msg string
	}{
		{"empty", "", `does not start with "pacsnet-invite-1:"`},
		{"no prefix", strings.TrimPrefix(valid, InvitePrefix), `does not start with "pacsnet-invite-1:"`},
		{"other version", strings.Replace(valid, "-1:", "-2:", 1), `does not start with "pacsnet-invite-1:"`},
		{"too long", InvitePrefix + strings.Repeat("A", MaxInviteLen), "longer than 16384 bytes"},
		{"not base64", InvitePrefix + "!!!", "not base64url"},
		{"padded base64", valid + "==", "not base64url"},
		{"not json", InvitePrefix + base64.RawURLEncoding.EncodeToString([]byte("hello")), "malformed"},
		{"truncated", valid[:len(valid)-10], "malformed"},
		{"body not an object", InvitePrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"invite":"x","sig":""}`)), "malformed body"},
		{"format 2", reencode(key, func(b map[string]any) { b["format"] = 2 }), "format 2 is not supported"},
		{"no peer id", reencode(key, func(b map[string]any) { delete(b, "peer_id") }), "bad peer ID"},
		{"renamed", reencode(nil, func(b map[string]any) { b["name"] = "Evil" }), "signature does not verify"},
		{"other address", reencode(nil, func(b map[string]any) { b["addrs"] = []string{"/ip4/10.0.0.1/tcp/1"} }), "signature does not verify"},
		{"signed by another key", reencode(other, func(map[string]any) {}), "signature does not verify"},
		{"other peer id", reencode(other, func(b map[string]any) { b["peer_id"] = peerOf(t, other).String() + "x" }), "malformed body"},
		{"bad recipient", encode(func(inv *Invite) { inv.Recipient = "age1qqqq" }), "recipient is not an age1pq hybrid recipient"},
		{"no name", encode(func(inv *Invite) { inv.Name = " \t" }), "name must be 1-64 characters"},
		{"long name", encode(func(inv *Invite) { inv.Name = strings.Repeat("n", 65) }), "name must be 1-64 characters"},
		{"name with an escape sequence", encode(func(inv *Invite) { inv.Name = "Evil\x1b[2J" }), "name holds control characters or invalid UTF-8"},
		{"name with a newline", encode(func(inv *Invite) { inv.Name = "Evil\nHospital" }), "name holds control characters or invalid UTF-8"},
		{"no addresses", encode(func(inv *Invite) { inv.Addrs = nil }), "needs 1-32 addresses"},
		{"33 addresses", encode(func(inv *Invite) {
			inv.Addrs = nil
			for range 33 {
				inv.Addrs = append(inv.Addrs, "/ip4/127.0.0.1/tcp/1")
			}
		}), "needs 1-32 addresses"},
		{"bad address", encode(func(inv *Invite) { inv.Addrs = []string{"/ip4/127.0.0.1/tcp/1", "/nope"} }), `bad address "/nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := ParseInvite(tt.invite)
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("ParseInvite: %v, want ErrBadInvite", err)
			}
			if want := "invalid invite: " + tt.msg; err.Error() != want {
				t.Errorf("got %q, want %q", err, want)
			}
			if !reflect.DeepEqual(inv, Invite{}) {
				t.Errorf("an invite returned with an error: %+v", inv)
			}
		})
	}
}
