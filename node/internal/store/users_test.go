package store

import (
	"testing"
	"time"
)

// Users and credentials survive a reopen; deleting credentials removes
// exactly those named (absent IDs are no error).
func TestUsersAndCredentials(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	s, err := Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	u := User{ID: "u-1", Name: "alice", Role: "clinician", Created: now, PasswordHash: "$argon2id$x", PasswordSet: now}
	if err := s.PutUser(u); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"tok-1", "tok-2", "ses-1"} {
		if err := s.PutCredential(Credential{ID: id, Kind: "token", User: "u-1", Hash: id + "-hash", Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteCredentials("tok-2", "nope"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(Options{Dir: dir, Key: key}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	us, err := s.Users()
	if err != nil || len(us) != 1 || us[0] != u {
		t.Fatalf("users %+v %v", us, err)
	}
	cs, err := s.Credentials()
	if err != nil || len(cs) != 2 || cs[0].ID != "ses-1" || cs[1].ID != "tok-1" {
		t.Fatalf("credentials %+v %v", cs, err)
	}
}
