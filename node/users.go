package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/access"
	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// User is a local account (store.User).
type User = store.User

// Credential is a user's API token or web session (store.Credential).
type Credential = store.Credential

// Credential kinds.
const (
	credToken   = "token"
	credSession = "session"
)

// Reasons of a refused login (api.ActLoginFailed).
const (
	reasonUnknownUser  = "unknown-user"
	reasonBadPassword  = "bad-password"
	reasonUserDisabled = "user-disabled"
)

// UsersConfig bounds local users' credentials.
type UsersConfig struct {
	// TokenTTL is how long an API token lasts when `token add` gives no
	// --expires. Default 720h (30 days).
	TokenTTL Duration `toml:"token_ttl"`

	// MaxTokenTTL is the longest an API token may last. Default 2160h
	// (90 days).
	MaxTokenTTL Duration `toml:"max_token_ttl"`

	// SessionIdle ends a web session after this long without a request
	// (automatic logoff). Default 15m.
	SessionIdle Duration `toml:"session_idle"`

	// SessionMax ends a web session this long after its login, however
	// busy. Default 12h.
	SessionMax Duration `toml:"session_max"`
}

func defaultUsersConfig() UsersConfig {
	return UsersConfig{TokenTTL: Duration{30 * 24 * time.Hour}, MaxTokenTTL: Duration{90 * 24 * time.Hour},
		SessionIdle: Duration{15 * time.Minute}, SessionMax: Duration{12 * time.Hour}}
}

func (c UsersConfig) validate() error {
	if c.TokenTTL.Duration <= 0 || c.MaxTokenTTL.Duration < c.TokenTTL.Duration {
		return errors.New("config: users.token_ttl must be positive and users.max_token_ttl at least users.token_ttl")
	}
	if c.SessionIdle.Duration <= 0 || c.SessionMax.Duration < c.SessionIdle.Duration {
		return errors.New("config: users.session_idle must be positive and users.session_max at least users.session_idle")
	}
	return nil
}

// Errors of the users room; errorCode maps them to API codes.
var (
	errUserExists  = errors.New("a user of that name exists")
	errNoUser      = errors.New("no such user")
	errNoToken     = errors.New("no token with that id")
	errLoginFailed = errors.New("wrong user name or password")
)

// lockedError refuses a login during its back-off.
type lockedError struct{ wait time.Duration }

func (e *lockedError) Error() string {
	return fmt.Sprintf("too many failed logins: try again in %s", e.wait.Round(time.Second))
}

// sessionTouchEvery is how often a session's last use is written to the
// archive (its inactivity clock runs in memory between writes).
const sessionTouchEvery = time.Minute

// users is the room of local people: accounts, their API tokens and web
// sessions, and the back-off after failed logins. Every change is synced
// in the archive before it is acknowledged; credentials are looked up in
// memory by the SHA-256 of the secret presented.
type users struct {
	store  *store.Store
	audit  *auditor
	clock  clock.Clock
	cfg    UsersConfig
	params access.Params
	log    *slog.Logger

	// Failed logins slow down guessing per user name and per source
	// address (in memory: a restart forgets them).
	byUser, byAddr *access.Backoff

	// hashing bounds the argon2id computations running at once (each
	// takes access.DefaultParams.Memory): a flood of logins queues
	// instead of exhausting memory.
	hashing chan struct{}

	mu       sync.Mutex
	byName   map[string]User
	nameOf   map[string]string      // user ID → name
	creds    map[string]*Credential // by secret hash
	lastUsed map[string]time.Time   // session ID → last request
}

func newUsers(s *store.Store, a *auditor, c clock.Clock, cfg UsersConfig, log *slog.Logger) (*users, error) {
	u := &users{store: s, audit: a, clock: c, cfg: cfg, params: access.DefaultParams, log: log,
		byUser: access.DefaultBackoff(), byAddr: access.DefaultBackoff(), hashing: make(chan struct{}, 2),
		byName: map[string]User{}, nameOf: map[string]string{}, creds: map[string]*Credential{}, lastUsed: map[string]time.Time{}}
	list, err := s.Users()
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	for _, v := range list {
		u.byName[v.Name] = v
		u.nameOf[v.ID] = v.Name
	}
	creds, err := s.Credentials()
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	for i := range creds {
		cr := &creds[i]
		u.creds[cr.Hash] = cr
		if cr.Kind == credSession {
			u.lastUsed[cr.ID] = cr.LastUsed
		}
	}
	return u, nil
}

// Name is the name of the user with ID id ("" if none).
func (u *users) Name(id string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.nameOf[id]
}

// Get returns a user by name.
func (u *users) Get(name string) (User, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.byName[name]
	return v, ok
}

// List returns the users by name.
func (u *users) List() []User {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]User, 0, len(u.byName))
	for _, v := range u.byName {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Add creates a user with a password.
func (u *users) Add(name, role, password, actor string) (User, error) {
	if err := access.CheckName(name); err != nil {
		return User{}, badRequest("user name: %v", err)
	}
	if !access.ValidRole(role) {
		return User{}, badRequest("role: want admin, clinician or auditor")
	}
	if err := access.CheckPassword(password); err != nil {
		return User{}, badRequest("password: %v", err)
	}
	hash, err := access.HashPassword(password, u.params)
	if err != nil {
		return User{}, err
	}
	id, err := access.NewID("u-")
	if err != nil {
		return User{}, err
	}
	now := u.clock.Now().UTC()
	v := User{ID: id, Name: name, Role: role, Created: now, PasswordHash: hash, PasswordSet: now}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.byName[name]; ok {
		return User{}, errUserExists
	}
	if err := u.store.PutUser(v); err != nil {
		return User{}, fmt.Errorf("store user: %w", err)
	}
	u.byName[name] = v
	u.nameOf[id] = name
	u.audit.Record(consent.Entry{Actor: actor, Action: api.ActUserAdded, Decision: consent.DecisionAllow,
		Reason: "user=" + id + " role=" + role})
	return v, nil
}

// change applies fn to a user and stores it; audited as action with the
// reason fn returns.
func (u *users) change(name, actor, action string, fn func(*User) (string, error)) (User, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.byName[name]
	if !ok {
		return User{}, errNoUser
	}
	reason, err := fn(&v)
	if err != nil {
		return User{}, err
	}
	if err := u.store.PutUser(v); err != nil {
		return User{}, fmt.Errorf("store user: %w", err)
	}
	u.byName[name] = v
	u.audit.Record(consent.Entry{Actor: actor, Action: action, Decision: consent.DecisionAllow, Reason: "user=" + v.ID + reason})
	return v, nil
}

// Disable disables a user: its tokens stop working at once and its
// sessions end. A user is never deleted, so its ID stays unique in the
// audit trail.
func (u *users) Disable(name, actor string) (User, error) {
	v, err := u.change(name, actor, api.ActUserDisabled, func(v *User) (string, error) {
		v.Disabled = true
		return "", nil
	})
	if err != nil {
		return v, err
	}
	return v, u.endSessions(v.ID)
}

// SetRole changes a user's role.
func (u *users) SetRole(name, role, actor string) (User, error) {
	if !access.ValidRole(role) {
		return User{}, badRequest("role: want admin, clinician or auditor")
	}
	return u.change(name, actor, api.ActUserRoleChanged, func(v *User) (string, error) {
		old := v.Role
		v.Role = role
		return " role=" + role + " was=" + old, nil
	})
}

// SetPassword replaces a user's password and ends its sessions.
func (u *users) SetPassword(name, password, actor string) (User, error) {
	if err := access.CheckPassword(password); err != nil {
		return User{}, badRequest("password: %v", err)
	}
	hash, err := access.HashPassword(password, u.params)
	if err != nil {
		return User{}, err
	}
	v, err := u.change(name, actor, api.ActUserPasswordChanged, func(v *User) (string, error) {
		v.PasswordHash, v.PasswordSet = hash, u.clock.Now().UTC()
		return "", nil
	})
	if err != nil {
		return v, err
	}
	return v, u.endSessions(v.ID)
}

// endSessions deletes a user's sessions.
func (u *users) endSessions(userID string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for _, c := range u.creds {
		if c.User == userID && c.Kind == credSession {
			ids = append(ids, c.ID)
		}
	}
	if err := u.store.DeleteCredentials(ids...); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	u.forgetLocked(ids...)
	return nil
}

func (u *users) forgetLocked(ids ...string) {
	if len(ids) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
		delete(u.lastUsed, id)
	}
	for h, c := range u.creds {
		if gone[c.ID] {
			delete(u.creds, h)
		}
	}
}

// IssueToken creates an API token for a user, valid for ttl (0: the
// configured default; more than users.max_token_ttl is refused). The
// secret is returned once and never stored.
func (u *users) IssueToken(name string, ttl time.Duration, actor string) (string, Credential, error) {
	if ttl == 0 {
		ttl = u.cfg.TokenTTL.Duration
	}
	if ttl < 0 || ttl > u.cfg.MaxTokenTTL.Duration {
		return "", Credential{}, badRequest("expires: want a positive duration of at most %s (users.max_token_ttl)", fmtDays(u.cfg.MaxTokenTTL.Duration))
	}
	v, ok := u.Get(name)
	if !ok {
		return "", Credential{}, errNoUser
	}
	if v.Disabled {
		return "", Credential{}, badRequest("user %s is disabled", name)
	}
	secret, cr, err := u.newCredential(v, credToken, ttl, "tok-")
	if err != nil {
		return "", Credential{}, err
	}
	u.audit.Record(consent.Entry{Actor: actor, Action: api.ActTokenIssued, Decision: consent.DecisionAllow,
		Reason: "user=" + v.ID + " token=" + cr.ID, Expires: cr.Expires})
	return secret, cr, nil
}

func (u *users) newCredential(v User, kind string, ttl time.Duration, idPrefix string) (string, Credential, error) {
	prefix := access.PrefixToken
	if kind == credSession {
		prefix = access.PrefixSession
	}
	secret, hash, err := access.NewSecret(prefix)
	if err != nil {
		return "", Credential{}, err
	}
	id, err := access.NewID(idPrefix)
	if err != nil {
		return "", Credential{}, err
	}
	now := u.clock.Now().UTC()
	cr := Credential{ID: id, Kind: kind, User: v.ID, Hash: hash, Created: now, Expires: now.Add(ttl)}
	if kind == credSession {
		cr.LastUsed = now
	}
	if err := u.store.PutCredential(cr); err != nil {
		return "", Credential{}, fmt.Errorf("store %s: %w", kind, err)
	}
	u.mu.Lock()
	u.creds[hash] = &cr
	if kind == credSession {
		u.lastUsed[id] = now
	}
	u.mu.Unlock()
	return secret, cr, nil
}

// Tokens lists the API tokens (not sessions), newest first.
func (u *users) Tokens() []Credential {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []Credential
	for _, c := range u.creds {
		if c.Kind == credToken {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// RevokeToken deletes an API token; it stops working at once.
func (u *users) RevokeToken(id, actor string) (Credential, error) {
	u.mu.Lock()
	var found *Credential
	for _, c := range u.creds {
		if c.ID == id && c.Kind == credToken {
			found = c
		}
	}
	if found == nil {
		u.mu.Unlock()
		return Credential{}, errNoToken
	}
	if err := u.store.DeleteCredentials(id); err != nil {
		u.mu.Unlock()
		return Credential{}, fmt.Errorf("revoke token: %w", err)
	}
	u.forgetLocked(id)
	u.mu.Unlock()
	u.audit.Record(consent.Entry{Actor: actor, Action: api.ActTokenRevoked, Decision: consent.DecisionAllow,
		Reason: "user=" + found.User + " token=" + id})
	return *found, nil
}

// Login checks a user's password and opens a web session: the secret
// returned is a bearer credential until it is idle for users.session_idle
// or users.session_max after login. Repeated failures, per user name and
// per source address, back off (access.DefaultBackoff); a login during
// the wait is refused whatever the password.
func (u *users) Login(name, password, addr string) (string, Credential, error) {
	now := u.clock.Now()
	from := " from=" + addr
	if wait := max(u.byUser.Wait("u/"+name, now), u.byAddr.Wait(addr, now)); wait > 0 {
		u.audit.Deny(consent.Entry{Action: api.ActLoginLocked, Reason: u.who(name) + from})
		return "", Credential{}, &lockedError{wait}
	}
	v, ok := u.Get(name)
	var good bool
	u.hashing <- struct{}{}
	defer func() { <-u.hashing }()
	if ok {
		var err error
		if good, err = access.VerifyPassword(v.PasswordHash, password); err != nil {
			u.log.Error("stored password hash unreadable", "user", v.ID, "err", err)
		}
	} else {
		// Spend the same time on an unknown name as on a known one.
		access.VerifyPassword(dummyHash(u.params), password)
	}
	reason := ""
	switch {
	case !ok:
		reason = reasonUnknownUser
	case !good:
		reason = reasonBadPassword
	case v.Disabled:
		reason = reasonUserDisabled
	}
	if reason != "" {
		u.byUser.Fail("u/"+name, now)
		u.byAddr.Fail(addr, now)
		u.audit.Deny(consent.Entry{Action: api.ActLoginFailed, Reason: reason + " " + u.who(name) + from})
		return "", Credential{}, errLoginFailed
	}
	u.byUser.Succeed("u/" + name)
	u.byAddr.Succeed(addr)
	u.pruneSessions(now)
	secret, cr, err := u.newCredential(v, credSession, u.cfg.SessionMax.Duration, "ses-")
	if err != nil {
		return "", Credential{}, err
	}
	u.audit.Record(consent.Entry{Actor: v.ID, Action: api.ActLogin, Decision: consent.DecisionAllow, Reason: "session=" + cr.ID + from})
	cr.Expires = u.policy().Expiry(cr.Created, cr.LastUsed)
	return secret, cr, nil
}

// who names a login's user for the audit: its ID, or "unknown" (a name
// typed at a login prompt may be a password).
func (u *users) who(name string) string {
	if v, ok := u.Get(name); ok {
		return "user=" + v.ID
	}
	return "user=unknown"
}

var (
	dummyOnce sync.Once
	dummy     string
)

func dummyHash(p access.Params) string {
	dummyOnce.Do(func() { dummy, _ = access.HashPassword("not a password of anyone", p) })
	return dummy
}

// pruneSessions deletes the sessions that ended (idle or past their
// maximum), so that logins do not accumulate records; called at each
// login.
func (u *users) pruneSessions(now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for _, c := range u.creds {
		if c.Kind == credSession && !u.policy().Live(c.Created, u.lastUsed[c.ID], now) {
			ids = append(ids, c.ID)
		}
	}
	if err := u.store.DeleteCredentials(ids...); err != nil {
		u.log.Warn("delete ended sessions", "err", err)
		return
	}
	u.forgetLocked(ids...)
}

// Logout ends the session whose secret is given.
func (u *users) Logout(secret string) error {
	u.mu.Lock()
	c, ok := u.creds[access.HashSecret(secret)]
	if !ok || c.Kind != credSession {
		u.mu.Unlock()
		return nil
	}
	cr := *c
	if err := u.store.DeleteCredentials(cr.ID); err != nil {
		u.mu.Unlock()
		return fmt.Errorf("end session: %w", err)
	}
	u.forgetLocked(cr.ID)
	u.mu.Unlock()
	u.audit.Record(consent.Entry{Actor: cr.User, Action: api.ActLogout, Decision: consent.DecisionAllow, Reason: "session=" + cr.ID})
	return nil
}

func (u *users) policy() access.SessionPolicy {
	return access.SessionPolicy{Idle: u.cfg.SessionIdle.Duration, Max: u.cfg.SessionMax.Duration}
}

// Authenticate finds the live credential a bearer secret is and the
// enabled user it belongs to. A session's use counts as activity.
func (u *users) Authenticate(secret string) (principal, bool) {
	now := u.clock.Now()
	h := access.HashSecret(secret)
	u.mu.Lock()
	c, ok := u.creds[h]
	if !ok {
		u.mu.Unlock()
		return principal{}, false
	}
	name := u.nameOf[c.User]
	v, ok := u.byName[name]
	if !ok || v.Disabled || !now.Before(c.Expires) {
		u.mu.Unlock()
		return principal{}, false
	}
	var touch *Credential
	if c.Kind == credSession {
		last := u.lastUsed[c.ID]
		if !u.policy().Live(c.Created, last, now) {
			u.mu.Unlock()
			return principal{}, false
		}
		u.lastUsed[c.ID] = now
		if now.Sub(c.LastUsed) >= sessionTouchEvery {
			c.LastUsed = now.UTC()
			cp := *c
			touch = &cp
		}
	}
	u.mu.Unlock()
	if touch != nil {
		if err := u.store.PutCredential(*touch); err != nil {
			u.log.Warn("write session last use", "err", err)
		}
	}
	return principal{User: v.ID, Name: v.Name, Role: v.Role}, true
}

// sourceAddr is a request's client address, without the port.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func fmtDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
