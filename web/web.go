package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

//go:embed all:dist
var dist embed.FS

//go:embed login.css
var loginCSS []byte

// CSP is the Content-Security-Policy of every page and asset: only the
// node's own scripts (and WebAssembly, which the image codecs are), no
// inline script or style attribute, no framing, forms posting only here.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; " +
	"worker-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// ErrBadLogin is what a [Sessions] returns for a wrong name or password
// (or a disabled user): the form says so without saying which.
var ErrBadLogin = errors.New("wrong user name or password")

// WaitError is what a [Sessions] returns for a login during the back-off
// after failed ones.
type WaitError struct{ Wait time.Duration }

func (e *WaitError) Error() string {
	return fmt.Sprintf("too many failed logins: wait %s and try again", e.Wait.Round(time.Second))
}

// Sessions opens and ends web sessions: the node's users room.
type Sessions interface {
	// Login checks a user's password (addr is the client's address,
	// for the back-off and the audit) and returns the new session's
	// secret.
	Login(name, password, addr string) (secret string, err error)
	// Logout ends the session whose secret is given.
	Logout(secret string) error
}

// Server serves the web app. Its zero value is not usable: see [New].
type Server struct {
	sessions Sessions
	facility string
	log      *slog.Logger
	assets   fs.FS
	built    bool
}

// New returns the web app's server for a facility.
func New(facility string, sessions Sessions, log *slog.Logger) *Server {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embedded tree always has dist
	}
	_, statErr := fs.Stat(sub, "index.html")
	return &Server{sessions: sessions, facility: facility, log: log, assets: sub, built: statErr == nil}
}

// Built says whether the binary carries the app's assets (`make web`).
func (s *Server) Built() bool { return s.built }

// Register adds the app's paths to mux: / (to /app/), /login, /logout,
// /login.css, /favicon.ico and /app/.
func (s *Server) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", secure(http.RedirectHandler("/app/", http.StatusSeeOther)))
	mux.Handle("GET /login", secure(http.HandlerFunc(s.loginPage)))
	mux.Handle("POST /login", secure(http.HandlerFunc(s.login)))
	mux.Handle("POST /logout", secure(http.HandlerFunc(s.logout)))
	mux.Handle("GET /login.css", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(loginCSS)
	})))
	mux.Handle("GET /app/", secure(http.HandlerFunc(s.asset)))
	// Browsers ask for it on their own; it is not an API route (whose
	// answer would be 401).
	mux.Handle("GET /favicon.ico", secure(http.NotFoundHandler()))
}

// CSRFToken is the value a session's state-changing API requests carry
// in the X-Pacsnet-CSRF header: a MAC of a constant under the session's
// secret, so it holds across restarts of the node and says nothing of the
// secret. A page of another origin can neither read the HttpOnly cookie
// nor this value.
func CSRFToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("pacsnet web app csrf v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// CSRFValid says whether got is the CSRF token of the session secret.
func CSRFValid(secret, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(CSRFToken(secret)), []byte(got)) == 1
}

// secure sets the headers every answer of the web app carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — pacsnet{{if .Facility}} — {{.Facility}}{{end}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/login.css">
</head>
<body>
<main class="login">
<h1>pacsnet</h1>
{{if .Facility}}<p class="facility">{{.Facility}}</p>{{end}}
{{if .Message}}<p class="error" role="alert" id="login-error">{{.Message}}</p>{{end}}
{{if .Notice}}<p class="notice" role="status">{{.Notice}}</p>{{end}}
<form method="post" action="/login">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{{.User}}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`))

type loginView struct{ Facility, Message, Notice, User string }

func (s *Server) renderLogin(w http.ResponseWriter, status int, v loginView) {
	v.Facility = s.facility
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := loginTmpl.Execute(w, v); err != nil {
		s.log.Debug("write login page", "err", err)
	}
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	v := loginView{}
	if r.URL.Query().Get("ended") != "" {
		v.Notice = "Your session ended. Sign in again."
	}
	s.renderLogin(w, http.StatusOK, v)
}

const maxFormBody = 8 << 10

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.renderLogin(w, http.StatusForbidden, loginView{Message: "This sign-in did not come from this node's own page."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, loginView{Message: "The form could not be read."})
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	if name == "" || password == "" {
		s.renderLogin(w, http.StatusBadRequest, loginView{Message: "Enter your user name and password.", User: name})
		return
	}
	secret, err := s.sessions.Login(name, password, clientAddr(r))
	var we *WaitError
	switch {
	case errors.As(err, &we):
		w.Header().Set("Retry-After", fmt.Sprint(int(we.Wait.Seconds()+0.999)))
		s.renderLogin(w, http.StatusTooManyRequests, loginView{Message: we.Error(), User: name})
		return
	case errors.Is(err, ErrBadLogin):
		s.renderLogin(w, http.StatusUnauthorized, loginView{Message: "Wrong user name or password.", User: name})
		return
	case err != nil:
		s.log.Error("web login", "err", err)
		s.renderLogin(w, http.StatusInternalServerError, loginView{Message: "The node could not sign you in; see its log.", User: name})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: api.CookieSession, Value: secret, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureCookie(r)})
	http.Redirect(w, r, "/app/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(api.CookieSession)
	if err != nil || c.Value == "" {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	got := r.Header.Get(api.HeaderCSRF)
	if got == "" {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		got = r.PostFormValue("csrf")
	}
	if !CSRFValid(c.Value, got) {
		http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
		return
	}
	if err := s.sessions.Logout(c.Value); err != nil {
		s.log.Error("web logout", "err", err)
		http.Error(w, "the node could not end the session; see its log", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: api.CookieSession, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureCookie(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sameOrigin refuses a form posted from another origin (login CSRF).
// Browsers say where a request comes from in Sec-Fetch-Site and Origin;
// Origin is "null" when a referrer policy withholds it, and then
// Sec-Fetch-Site must say same-origin. A client that sends neither is not
// a browser page of another site.
func sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	switch {
	case o == "":
		return true
	case o == "null":
		return site == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// secureCookie says whether the session cookie is marked Secure: always,
// but on plain HTTP to a host other than loopback, where a browser would
// drop a Secure cookie (put the node behind TLS there: see
// docs/operations.md).
func secureCookie(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// asset serves one file of the built app; there is no fallback to
// index.html, so a missing file is a 404 and never HTML in place of a
// script or WebAssembly module.
func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	if !s.built {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "The web app is not built into this binary: run `make build` (or `make web` before `go build`).")
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/app/")
	if name == "" {
		name = "index.html"
	}
	name = path.Clean(name)
	if !fs.ValidPath(name) || strings.HasPrefix(name, ".") || strings.Contains(name, "/.") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(s.assets, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".wasm":
		ct = "application/wasm"
	case ".js", ".mjs":
		ct = "text/javascript; charset=utf-8"
	case ".map":
		ct = "application/json"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	sum := sha256.Sum256(b)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:12])+`"`)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(b)))
}
