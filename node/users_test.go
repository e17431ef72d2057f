package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/access"
	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
)

// apiAs calls n's API with a bearer token and decodes a JSON answer into
// out (when not nil and the call succeeded).
func apiAs(t *testing.T, n *tnode, token, method, path string, in, out any) (int, []byte) {
	t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	}
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	code, b := apiRaw(t, n, method, path, auth, body)
	if out != nil && code == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return code, b
}

// addUser adds a user with the admin token and issues it an API token.
func addUser(t *testing.T, n *tnode, name, role, password string) (api.User, string) {
	t.Helper()
	var added api.UserPassword
	if code, b := apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/users", api.AddUserRequest{Name: name, Role: role, Password: password}, &added); code != http.StatusOK {
		t.Fatalf("add user %s: %d %s", name, code, b)
	}
	var tok api.TokenIssued
	if code, b := apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/tokens", api.AddTokenRequest{User: name}, &tok); code != http.StatusOK {
		t.Fatalf("token for %s: %d %s", name, code, b)
	}
	return added.Account, tok.Secret
}

func wantCode(t *testing.T, what string, code int, body []byte, want int, apiCode api.Code) {
	t.Helper()
	if code != want {
		t.Errorf("%s: %d %s, want %d", what, code, body, want)
		return
	}
	if apiCode != "" {
		var e api.ErrorBody
		if err := json.Unmarshal(body, &e); err != nil || e.Code != apiCode {
			t.Errorf("%s: body %s, want code %s", what, body, apiCode)
		}
	}
}

// Role enforcement on a sample of each class of route: a clinician works
// with studies but not partners, grants, users or the audit; an auditor
// reads the audit and nothing else; everyone sees status. Every audit
// entry names the user who acted by its ID, and the facility.
func TestUserRoles(t *testing.T) {
	n := newNode(t, "Alpha")
	alice, clin := addUser(t, n, "alice", api.RoleClinician, "alice-password")
	_, aud := addUser(t, n, "audrey", api.RoleAuditor, "audrey-password")
	_, files := ctStudy(t, 7, 1, "")

	for _, tc := range []struct {
		who, token, method, path string
		body                     []byte
		want                     int
	}{
		{"clinician", clin, "GET", "/api/v1/status", nil, 200},
		{"clinician", clin, "GET", "/api/v1/studies", nil, 200},
		{"clinician", clin, "GET", "/api/v1/shared", nil, 200},
		{"clinician", clin, "POST", "/api/v1/instances", files[0].Data, 200},
		{"clinician", clin, "POST", "/api/v1/peers", []byte(`{"invite":"x"}`), 403},
		{"clinician", clin, "GET", "/api/v1/peers", nil, 403},
		{"clinician", clin, "POST", "/api/v1/grants", []byte(`{}`), 403},
		{"clinician", clin, "GET", "/api/v1/users", nil, 403},
		{"clinician", clin, "POST", "/api/v1/tokens", []byte(`{"user_name":"alice"}`), 403},
		{"clinician", clin, "GET", "/api/v1/audit", nil, 403},
		{"auditor", aud, "GET", "/api/v1/audit", nil, 200},
		{"auditor", aud, "GET", "/api/v1/audit/verify", nil, 200},
		{"auditor", aud, "GET", "/api/v1/status", nil, 200},
		{"auditor", aud, "GET", "/api/v1/studies", nil, 403},
		{"auditor", aud, "POST", "/api/v1/fetches", []byte(`{}`), 403},
		{"auditor", aud, "GET", "/api/v1/grants", nil, 403},
		{"auditor", aud, "POST", "/api/v1/users", []byte(`{}`), 403},
		{"auditor", aud, "POST", "/api/v1/sends", []byte(`{}`), 403},
		{"admin", n.keys.apiToken, "GET", "/api/v1/users", nil, 200},
	} {
		auth := "Bearer " + tc.token
		code, body := apiRaw(t, n, tc.method, tc.path, auth, tc.body)
		var c api.Code
		if tc.want == 403 {
			c = api.CodeForbidden
			if !strings.Contains(string(body), "needs the role admin") {
				t.Errorf("%s %s %s: %s does not name the role needed", tc.who, tc.method, tc.path, body)
			}
		}
		wantCode(t, tc.who+" "+tc.method+" "+tc.path, code, body, tc.want, c)
	}

	// The clinician's import is audited under its user ID, with the
	// facility; admin-token actions stay "admin".
	imports := findAudit(t, n, consent.Entry{Action: consent.ActImport})
	if len(imports) != 1 || imports[0].Actor != alice.UserID || imports[0].Facility != "Alpha" {
		t.Errorf("import entries %+v: want one by %s at Alpha", imports, alice.UserID)
	}
	added := findAudit(t, n, consent.Entry{Action: api.ActUserAdded})
	if len(added) != 2 || added[0].Actor != api.ActorAdmin || added[0].Reason != "user="+alice.UserID+" role=clinician" {
		t.Errorf("user-added entries %+v", added)
	}
	for _, e := range auditLog(t, n) {
		if e.Facility != "Alpha" {
			t.Errorf("entry %d (%s) names facility %q", e.Seq, e.Action, e.Facility)
		}
	}
}

// API tokens: stored only as their SHA-256, expire (default 30d, at most
// users.max_token_ttl), stop at once when revoked or their user is
// disabled, and survive a restart.
func TestUserTokens(t *testing.T) {
	clk := &testClock{}
	n := newNode(t, "Alpha", nodeSetup{clock: clk})
	_, tok := addUser(t, n, "alice", api.RoleClinician, "alice-password")
	status := func(n *tnode, tok string) int {
		code, _ := apiAs(t, n, tok, "GET", "/api/v1/studies", nil, nil)
		return code
	}
	if status(n, tok) != 200 {
		t.Fatal("a new token does not work")
	}
	creds, err := n.store.Credentials()
	if err != nil || len(creds) != 1 || creds[0].Hash != access.HashSecret(tok) {
		t.Fatalf("stored credentials %+v, %v", creds, err)
	}
	if b, _ := json.Marshal(creds); strings.Contains(string(b), tok[len(access.PrefixToken):]) {
		t.Fatal("the token is stored")
	}
	code, b := apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/tokens", api.AddTokenRequest{User: "alice", Expires: "91d"}, nil)
	wantCode(t, "token beyond max_token_ttl", code, b, 400, api.CodeBadRequest)
	code, b = apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/tokens", api.AddTokenRequest{User: "nobody"}, nil)
	wantCode(t, "token of an unknown user", code, b, 404, api.CodeNotFound)

	// Revocation and restart.
	var short api.TokenIssued
	apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/tokens", api.AddTokenRequest{User: "alice", Expires: "1h"}, &short)
	n = n.restart(nil)
	if status(n, tok) != 200 || status(n, short.Secret) != 200 {
		t.Fatal("tokens do not survive a restart")
	}
	var list []api.Token
	apiAs(t, n, n.keys.apiToken, "GET", "/api/v1/tokens", nil, &list)
	if len(list) != 2 || list[0].User != "alice" {
		t.Fatalf("tokens %+v", list)
	}
	clk.Advance(time.Hour)
	if status(n, short.Secret) != 401 {
		t.Error("an expired token works")
	}
	clk.Advance(29 * 24 * time.Hour)
	if status(n, tok) != 200 {
		t.Error("a token before its 30 days ended")
	}
	var revoked api.Token
	if code, b := apiAs(t, n, n.keys.apiToken, "DELETE", "/api/v1/tokens/"+list[1].TokenID, nil, &revoked); code != 200 || revoked.TokenID != list[1].TokenID {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if status(n, tok) != 401 {
		t.Error("a revoked token works")
	}
	if len(findAudit(t, n, consent.Entry{Action: api.ActTokenRevoked})) != 1 {
		t.Error("revocation not audited")
	}

	// Disabling a user stops its tokens at once.
	_, bob := addUser(t, n, "bob", api.RoleClinician, "bob-password")
	if status(n, bob) != 200 {
		t.Fatal("bob's token does not work")
	}
	if code, b := apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/users/bob/disable", nil, nil); code != 200 {
		t.Fatalf("disable: %d %s", code, b)
	}
	code, b = apiAs(t, n, bob, "GET", "/api/v1/status", nil, nil)
	wantCode(t, "disabled user's token", code, b, 401, api.CodeUnauthorized)
	clk.Advance(24 * time.Hour)
	code, b = apiAs(t, n, tok, "GET", "/api/v1/status", nil, nil)
	wantCode(t, "expired token", code, b, 401, api.CodeUnauthorized)
}

// Passwords are stored as argon2id PHC strings; login opens a session
// that ends after users.session_idle without use and at
// users.session_max; repeated failures back off per user and per
// address; the audit has every event and never a password or token.
func TestUserLoginSessions(t *testing.T) {
	clk := &testClock{}
	n := newNode(t, "Alpha", nodeSetup{clock: clk})
	alice, _ := addUser(t, n, "alice", api.RoleClinician, "alice-password")
	u, _ := n.users.Get("alice")
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(u.PasswordHash, "alice-password") {
		t.Fatalf("stored password hash %q", u.PasswordHash)
	}
	login := func(user, pw string) (int, api.Session, []byte) {
		var s api.Session
		code, b := apiAs(t, n, "", "POST", "/api/v1/login", api.LoginRequest{User: user, Password: pw}, &s)
		return code, s, b
	}
	code, s, b := login("alice", "alice-password")
	if code != 200 || !strings.HasPrefix(s.Secret, access.PrefixSession) || s.Account.UserID != alice.UserID {
		t.Fatalf("login: %d %s", code, b)
	}
	use := func(tok string) int {
		code, _ := apiAs(t, n, tok, "GET", "/api/v1/studies", nil, nil)
		return code
	}
	// Used every 10 minutes it lives; idle for 15 it ends.
	for range 3 {
		clk.Advance(10 * time.Minute)
		if use(s.Secret) != 200 {
			t.Fatal("a session in use ended")
		}
	}
	clk.Advance(15 * time.Minute)
	code, b = apiAs(t, n, s.Secret, "GET", "/api/v1/studies", nil, nil)
	wantCode(t, "idle session", code, b, 401, api.CodeUnauthorized)
	// The absolute maximum ends a busy session.
	_, s, _ = login("alice", "alice-password")
	for range 12 * 6 {
		clk.Advance(10 * time.Minute)
		use(s.Secret)
	}
	if use(s.Secret) != 401 {
		t.Error("a session outlived users.session_max")
	}
	// Ended sessions are deleted at the next login.
	_, s, _ = login("alice", "alice-password")
	if creds, _ := n.store.Credentials(); len(creds) != 2 { // alice's token and the new session
		t.Errorf("%d credentials stored after ended sessions, want 2", len(creds))
	}
	// Logout ends a session.
	_, s, _ = login("alice", "alice-password")
	var out api.LoggedOut
	if code, _ := apiAs(t, n, s.Secret, "POST", "/api/v1/logout", nil, &out); code != 200 || !out.Ended || use(s.Secret) != 401 {
		t.Errorf("logout: %d %+v", code, out)
	}

	// Lockout: 5 free failures, then a wait, also for the right password.
	for i := range 5 {
		code, _, b := login("alice", "wrong-password")
		wantCode(t, "failure", code, b, 401, api.CodeUnauthorized)
		_ = i
	}
	code, _, b = login("alice", "wrong-password")
	wantCode(t, "6th failure", code, b, 401, api.CodeUnauthorized)
	code, _, b = login("alice", "alice-password")
	wantCode(t, "right password during the back-off", code, b, 429, api.CodeTooManyRequests)
	clk.Advance(2 * time.Second)
	if code, _, b := login("alice", "alice-password"); code != 200 {
		t.Errorf("login after the back-off: %d %s", code, b)
	}
	// Per address: made-up names from one address back off too.
	for i := range 6 {
		login("nobody"+string(rune('a'+i)), "x-password")
	}
	code, _, b = login("alice", "alice-password")
	wantCode(t, "address in back-off", code, b, 429, api.CodeTooManyRequests)
	clk.Advance(time.Hour)
	// A disabled user cannot log in.
	apiAs(t, n, n.keys.apiToken, "POST", "/api/v1/users/alice/disable", nil, nil)
	code, _, b = login("alice", "alice-password")
	wantCode(t, "disabled user", code, b, 401, api.CodeUnauthorized)

	n.audit.flushDenials(true)
	for _, act := range []string{api.ActLogin, api.ActLoginFailed, api.ActLoginLocked, api.ActLogout, api.ActUserDisabled} {
		if len(findAudit(t, n, consent.Entry{Action: act})) == 0 {
			t.Errorf("no %s entry", act)
		}
	}
	logins := findAudit(t, n, consent.Entry{Action: api.ActLogin})
	if logins[0].Actor != alice.UserID || !strings.Contains(logins[0].Reason, "from=127.0.0.1") {
		t.Errorf("login entry %+v", logins[0])
	}
	for _, e := range auditLog(t, n) {
		js, _ := json.Marshal(e)
		if strings.Contains(string(js), "password\"") || strings.Contains(string(js), "alice-password") ||
			strings.Contains(string(js), access.PrefixSession) || strings.Contains(string(js), "nobodya") {
			t.Errorf("audit entry %s carries a secret or a typed name", js)
		}
	}
}

// A user name, role and password are checked; a name is unique.
func TestUserValidation(t *testing.T) {
	n := newNode(t, "Alpha")
	admin := n.keys.apiToken
	for _, tc := range []struct {
		req  api.AddUserRequest
		want int
	}{
		{api.AddUserRequest{Name: "Alice", Role: "clinician", Password: "long-enough"}, 400},
		{api.AddUserRequest{Name: "a\x1bb", Role: "clinician", Password: "long-enough"}, 400},
		{api.AddUserRequest{Name: "alice", Role: "root", Password: "long-enough"}, 400},
		{api.AddUserRequest{Name: "alice", Role: "clinician", Password: "short"}, 400},
		{api.AddUserRequest{Name: "alice", Role: "clinician"}, 200},
		{api.AddUserRequest{Name: "alice", Role: "auditor", Password: "long-enough"}, 409},
	} {
		var out api.UserPassword
		code, b := apiAs(t, n, admin, "POST", "/api/v1/users", tc.req, &out)
		if code != tc.want {
			t.Errorf("%+v: %d %s, want %d", tc.req, code, b, tc.want)
		}
		if code == 200 && (len(out.Password) < 30 || out.Account.Role != "clinician") {
			t.Errorf("generated password %q, user %+v", out.Password, out.Account)
		}
	}
	var u api.User
	if code, b := apiAs(t, n, admin, "POST", "/api/v1/users/alice/role", api.RoleRequest{Role: "auditor"}, &u); code != 200 || u.Role != "auditor" {
		t.Errorf("set role: %d %s", code, b)
	}
	var pw api.UserPassword
	if code, b := apiAs(t, n, admin, "POST", "/api/v1/users/alice/password", nil, &pw); code != 200 || pw.Password == "" {
		t.Errorf("generated password: %d %s", code, b)
	}
	var s api.Session
	if code, b := apiAs(t, n, "", "POST", "/api/v1/login", api.LoginRequest{User: "alice", Password: pw.Password}, &s); code != 200 || s.Account.Role != "auditor" {
		t.Errorf("login with the new password: %d %s", code, b)
	}
	if code, _ := apiAs(t, n, admin, "POST", "/api/v1/users/nobody/disable", nil, nil); code != 404 {
		t.Errorf("disable unknown: %d", code)
	}
}

// The server enforces every route's declared roles, before anything
// else: for each role, a route that does not list it answers 403
// forbidden naming the roles needed, and one that does never does so.
func TestEveryRouteEnforcesItsRoles(t *testing.T) {
	n := newNode(t, "Alpha")
	tokens := map[string]string{}
	for _, role := range api.RolesAll {
		_, tokens[role] = addUser(t, n, "u-"+role, role, "password-"+role)
	}
	fill := strings.NewReplacer("{"+api.ParamPeer+"}", "Nobody", "{"+api.ParamStudyUID+"}", "1.2.3",
		"{"+api.ParamSOPInstanceUID+"}", "1.2.3.4", "{"+api.ParamGrantID+"}", "g-none", "{"+api.ParamFetchID+"}", "f-none",
		"{"+api.ParamAE+"}", "NOBODY", "{"+api.ParamSendID+"}", "s-none", "{"+api.ParamUser+"}", "nobody",
		"{"+api.ParamTokenID+"}", "tok-none")
	for _, rt := range api.Routes {
		if rt.Public || rt.Name == "Logout" {
			continue
		}
		for _, role := range api.RolesAll {
			path := fill.Replace(rt.Path)
			code, body := apiRaw(t, n, rt.Method, path, "Bearer "+tokens[role], nil)
			allowed := false
			for _, r := range rt.Roles {
				allowed = allowed || r == role
			}
			refused := code == http.StatusForbidden && strings.Contains(string(body), "needs the role")
			if allowed == refused {
				t.Errorf("%s as %s: %d %s (allowed: %v)", rt.Name, role, code, body, allowed)
			}
			if refused {
				wantCode(t, rt.Name+" as "+role, code, body, 403, api.CodeForbidden)
			}
		}
	}
}
