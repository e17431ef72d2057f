package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/access"
	"github.com/pacsnet/pacsnet/api"
)

type principalKey struct{}

// withPrincipal hands the authenticated principal on to the handlers.
func withPrincipal(r *http.Request, p principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

// publicRoute reports whether r is for a route that needs no credential
// (login).
func publicRoute(r *http.Request) bool {
	for _, rt := range api.Routes {
		if rt.Public && r.Method == rt.Method && r.URL.Path == rt.Path {
			return true
		}
	}
	return false
}

// authorizeRole is the one check of a principal's role against the roles
// a route declares: a role it does not list is forbidden, with a message
// naming the roles needed (never what the route would have answered).
func authorizeRole(rt api.Route, p principal) error {
	if rt.Public || (p.Role != "" && slices.Contains(rt.Roles, p.Role)) {
		return nil
	}
	role := p.Role
	if role == "" {
		role = "none"
	}
	return &apiError{api.CodeForbidden, fmt.Sprintf("this needs the role %s; you act as %s", strings.Join(rt.Roles, " or "), role)}
}

// usersAPI serves the users, tokens and login routes (users.go).
type usersAPI struct{ n *Node }

func apiUser(v User) api.User {
	return api.User{UserID: v.ID, Name: v.Name, Role: v.Role, Disabled: v.Disabled, Created: v.Created, PasswordSet: v.PasswordSet}
}

func (a usersAPI) apiToken(c Credential) api.Token {
	return api.Token{TokenID: c.ID, UserID: c.User, User: a.n.users.Name(c.User), Created: c.Created, Expires: c.Expires,
		Expired: !a.n.clock.Now().Before(c.Expires)}
}

func (a usersAPI) list(w http.ResponseWriter, r *http.Request) error {
	out := []api.User{}
	for _, v := range a.n.users.List() {
		out = append(out, apiUser(v))
	}
	return ok(w, out)
}

// passwordOr is the password asked for, or a generated one to answer.
func passwordOr(pw string) (use, generated string, err error) {
	if pw != "" {
		return pw, "", nil
	}
	gen, err := access.NewPassword()
	return gen, gen, err
}

func (a usersAPI) add(w http.ResponseWriter, r *http.Request) error {
	var req api.AddUserRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	pw, gen, err := passwordOr(req.Password)
	if err != nil {
		return err
	}
	v, err := a.n.users.Add(req.Name, req.Role, pw, actor(r))
	if err != nil {
		return err
	}
	return ok(w, api.UserPassword{Account: apiUser(v), Password: gen})
}

func (a usersAPI) disable(w http.ResponseWriter, r *http.Request) error {
	v, err := a.n.users.Disable(r.PathValue(api.ParamUser), actor(r))
	if err != nil {
		return err
	}
	return ok(w, apiUser(v))
}

func (a usersAPI) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req api.PasswordRequest
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	pw, gen, err := passwordOr(req.Password)
	if err != nil {
		return err
	}
	v, err := a.n.users.SetPassword(r.PathValue(api.ParamUser), pw, actor(r))
	if err != nil {
		return err
	}
	return ok(w, api.UserPassword{Account: apiUser(v), Password: gen})
}

func (a usersAPI) setRole(w http.ResponseWriter, r *http.Request) error {
	var req api.RoleRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	v, err := a.n.users.SetRole(r.PathValue(api.ParamUser), req.Role, actor(r))
	if err != nil {
		return err
	}
	return ok(w, apiUser(v))
}

func (a usersAPI) tokens(w http.ResponseWriter, r *http.Request) error {
	out := []api.Token{}
	for _, c := range a.n.users.Tokens() {
		out = append(out, a.apiToken(c))
	}
	return ok(w, out)
}

func (a usersAPI) addToken(w http.ResponseWriter, r *http.Request) error {
	var req api.AddTokenRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.Expires != "" {
		d, err := api.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return badRequest("expires %q: want a positive duration such as 30d or 12h", req.Expires)
		}
		ttl = d
	}
	secret, c, err := a.n.users.IssueToken(req.User, ttl, actor(r))
	if err != nil {
		return err
	}
	return ok(w, api.TokenIssued{Token: a.apiToken(c), Secret: secret})
}

func (a usersAPI) revokeToken(w http.ResponseWriter, r *http.Request) error {
	c, err := a.n.users.RevokeToken(r.PathValue(api.ParamTokenID), actor(r))
	if err != nil {
		return err
	}
	return ok(w, a.apiToken(c))
}

func (a usersAPI) login(w http.ResponseWriter, r *http.Request) error {
	var req api.LoginRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	secret, c, err := a.n.users.Login(req.User, req.Password, sourceAddr(r))
	if err != nil {
		return err
	}
	v, _ := a.n.users.Get(req.User)
	return ok(w, api.Session{Secret: secret, Account: apiUser(v), Expires: c.Expires})
}

func (a usersAPI) logout(w http.ResponseWriter, r *http.Request) error {
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ended := strings.HasPrefix(secret, access.PrefixSession)
	if err := a.n.users.Logout(secret); err != nil {
		return err
	}
	return ok(w, api.LoggedOut{Ended: ended})
}
