package access

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Roles a local user can have: admin manages partners, grants, users and
// the audit; clinician searches, fetches, views, imports, exports and
// sends; auditor reads and verifies the audit trail only.
const (
	RoleAdmin     = "admin"
	RoleClinician = "clinician"
	RoleAuditor   = "auditor"
)

// Roles lists the roles in order of power.
var Roles = []string{RoleAdmin, RoleClinician, RoleAuditor}

// ValidRole reports whether r is one of Roles.
func ValidRole(r string) bool {
	for _, v := range Roles {
		if v == r {
			return true
		}
	}
	return false
}

// ErrBadName is returned by CheckName.
var ErrBadName = errors.New("a user name is 1-64 of a-z 0-9 . _ -")

// CheckName checks a user name: 1-64 bytes of [a-z0-9._-], not "." or
// "..". The message never quotes the name.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > 64 || name == "." || name == ".." {
		return ErrBadName
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return ErrBadName
		}
	}
	return nil
}

// Password limits: a password is 8-1024 bytes (longer is no stronger and
// costs argon2id's input time).
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// CheckPassword checks a new password's length.
func CheckPassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("a password is %d-%d bytes", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// Params are argon2id's cost parameters.
type Params struct {
	Time    uint32 // passes
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultParams are OWASP's argon2id recommendation (19 MiB, 2 passes, 1
// lane): about 30 ms a login on a small server, and 19 MiB of memory for
// each guess an attacker with the hashes makes. docs/threat-model.md
// records them.
var DefaultParams = Params{Time: 2, Memory: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// HashPassword hashes pw with argon2id and a random 16-byte salt,
// encoded in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded base64).
func HashPassword(pw string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// ErrBadHash is returned for a stored hash that is not an argon2id PHC
// string this package can check.
var ErrBadHash = errors.New("malformed password hash")

// VerifyPassword reports whether pw matches a hash from HashPassword, in
// constant time over the hash. Parameters are read from the hash, so
// hashes made with older parameters keep working.
func VerifyPassword(encoded, pw string) (bool, error) {
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return false, ErrBadHash
	}
	var p Params
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Time == 0 || p.Threads == 0 || p.Memory < 8*uint32(p.Threads) || p.Memory > 4<<20 || p.Time > 64 {
		return false, ErrBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(f[4])
	if err != nil || len(salt) < 8 {
		return false, ErrBadHash
	}
	want, err := b64.DecodeString(f[5])
	if err != nil || len(want) < 16 {
		return false, ErrBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Secret prefixes say what kind of bearer credential a string is, so a
// leaked one is recognisable (secret scanners) and never tried as the
// other kind.
const (
	PrefixToken   = "pnt_"
	PrefixSession = "pns_"
)

// NewSecret returns a new bearer secret, prefix followed by 32 random
// bytes (unpadded base64url), and the hash to store instead of it.
func NewSecret(prefix string) (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("new secret: %w", err)
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret), nil
}

// HashSecret is what is stored of a bearer secret: hex SHA-256. A secret
// has 256 bits of entropy, so a fast hash is enough; the database never
// holds anything that could be presented.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewID returns a random identifier: prefix and 16 hex digits.
func NewID(prefix string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// NewPassword returns a generated one-time password: 20 bytes of
// randomness, 32 lowercase base32 characters in groups of four.
func NewPassword() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new password: %w", err)
	}
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	var out []string
	for i := 0; i < len(s); i += 4 {
		out = append(out, s[i:min(i+4, len(s))])
	}
	return strings.Join(out, "-"), nil
}

// SessionPolicy bounds a web session's life.
type SessionPolicy struct {
	Idle time.Duration // ends after this long without a request
	Max  time.Duration // ends this long after login, whatever its use
}

// Live reports whether a session created at created and last used at
// lastUsed is still valid at now.
func (p SessionPolicy) Live(created, lastUsed, now time.Time) bool {
	return now.Sub(lastUsed) < p.Idle && now.Sub(created) < p.Max
}

// Expiry is when a session ends if it is not used again.
func (p SessionPolicy) Expiry(created, lastUsed time.Time) time.Time {
	idle, abs := lastUsed.Add(p.Idle), created.Add(p.Max)
	if idle.Before(abs) {
		return idle
	}
	return abs
}
