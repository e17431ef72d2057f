package access

import (
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"dr.smith_2-x", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"Alice", false}, {"a b", false},
		{"a/b", false}, {"..", false}, {"é", false}, {"a\x1b", false},
	} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	p := Params{Time: 1, Memory: 64, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(h, "correct") {
		t.Fatalf("hash %q: want PHC argon2id without the password", h)
	}
	h2, _ := HashPassword("correct horse", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := VerifyPassword(h, "correct horsf"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "$argon2id$v=19$m=64,t=1,p=1$!!$AAAA"} {
		if _, err := VerifyPassword(bad, "x"); err != ErrBadHash {
			t.Errorf("VerifyPassword(%q) = %v, want ErrBadHash", bad, err)
		}
	}
	// The default parameters, as docs/threat-model.md states them.
	if DefaultParams != (Params{Time: 2, Memory: 19456, Threads: 1}) {
		t.Errorf("DefaultParams = %+v: update docs/threat-model.md", DefaultParams)
	}
}

func TestSecret(t *testing.T) {
	s, h, err := NewSecret(PrefixToken)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, PrefixToken) || len(s) != len(PrefixToken)+43 || HashSecret(s) != h || len(h) != 64 {
		t.Fatalf("secret %q hash %q", s, h)
	}
	pw, err := NewPassword()
	if err != nil || CheckPassword(pw) != nil || len(pw) != 39 {
		t.Fatalf("NewPassword = %q %v", pw, err)
	}
}

func TestSessionPolicy(t *testing.T) {
	p := SessionPolicy{Idle: 15 * time.Minute, Max: 12 * time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		last, now time.Duration
		live      bool
	}{
		{0, 14 * time.Minute, true},
		{0, 15 * time.Minute, false},
		{11*time.Hour + 50*time.Minute, 11*time.Hour + 59*time.Minute, true},
		{11*time.Hour + 59*time.Minute, 12 * time.Hour, false},
	} {
		if got := p.Live(t0, t0.Add(tc.last), t0.Add(tc.now)); got != tc.live {
			t.Errorf("last %v now %v: live %v, want %v", tc.last, tc.now, got, tc.live)
		}
	}
	if got := p.Expiry(t0, t0.Add(11*time.Hour+50*time.Minute)); !got.Equal(t0.Add(12 * time.Hour)) {
		t.Errorf("Expiry near the maximum = %v", got)
	}
}

func TestBackoff(t *testing.T) {
	b := DefaultBackoff()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		if d := b.Fail("u", now); d != 0 {
			t.Fatalf("failure %d: wait %v, want none", i, d)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for _, w := range want {
		if d := b.Fail("u", now); d != w {
			t.Fatalf("wait %v, want %v", d, w)
		}
		if got := b.Wait("u", now); got != w {
			t.Fatalf("Wait = %v, want %v", got, w)
		}
	}
	for range 30 {
		b.Fail("u", now)
	}
	if got := b.Wait("u", now); got != 15*time.Minute {
		t.Fatalf("bounded wait = %v, want 15m", got)
	}
	if b.Wait("other", now) != 0 {
		t.Fatal("another key waits")
	}
	if b.Wait("u", now.Add(15*time.Minute)) != 0 {
		t.Fatal("still waiting after the wait")
	}
	b.Succeed("u")
	if b.Failures("u", now) != 0 {
		t.Fatal("success did not clear")
	}
	b.Fail("q", now)
	if b.Failures("q", now.Add(25*time.Hour)) != 0 {
		t.Fatal("a quiet key was not forgotten")
	}
	small := &Backoff{Free: 1, Base: time.Second, Max: time.Minute, Forget: time.Hour, MaxKeys: 3}
	for i := range 10 {
		small.Fail(string(rune('a'+i)), now.Add(time.Duration(i)))
	}
	if len(small.m) > 3 {
		t.Fatalf("holds %d keys, want at most 3", len(small.m))
	}
}
