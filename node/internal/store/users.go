package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes of the users room: local accounts and their bearer
// credentials (API tokens and web sessions). Secrets are never stored,
// only their SHA-256; passwords only as argon2id hashes.
const (
	pfxUser = "user/" // + user name → User
	pfxCred = "cred/" // + credential ID → Credential
)

// User is a local account.
type User struct {
	ID           string    `json:"id"` // unique, never reused: the audit trail's actor
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	Disabled     bool      `json:"disabled,omitempty"`
	Created      time.Time `json:"created"`
	PasswordHash string    `json:"password_hash"` // argon2id, PHC string
	PasswordSet  time.Time `json:"password_set"`
}

// Credential is an API token or a web session of a user.
type Credential struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"` // "token" or "session"
	User     string    `json:"user"` // User.ID
	Hash     string    `json:"hash"` // hex SHA-256 of the secret
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`            // absolute end
	LastUsed time.Time `json:"last_used,omitzero"` // sessions: last request, written at most once a minute
}

// Users lists the local accounts by name.
func (s *Store) Users() ([]User, error) { return list[User](s, pfxUser) }

// PutUser stores (or replaces) an account; it is synced when PutUser
// returns.
func (s *Store) PutUser(u User) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxUser+u.Name, u) })
}

// Credentials lists every stored credential.
func (s *Store) Credentials() ([]Credential, error) { return list[Credential](s, pfxCred) }

// PutCredential stores (or replaces) a credential.
func (s *Store) PutCredential(c Credential) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxCred+c.ID, c) })
}

// DeleteCredentials deletes credentials by ID (absent ones are skipped),
// in one transaction.
func (s *Store) DeleteCredentials(ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.update(func(txn *badger.Txn) error {
		for _, id := range ids {
			if err := txn.Delete([]byte(pfxCred + id)); err != nil {
				return err
			}
		}
		return nil
	})
}
