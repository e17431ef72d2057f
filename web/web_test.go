package web

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

type fakeSessions struct {
	err    error
	logout []string
}

func (f *fakeSessions) Login(name, password, addr string) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	return "pns_secret-of-" + name, nil
}

func (f *fakeSessions) Logout(secret string) error { f.logout = append(f.logout, secret); return nil }

func newTest(t *testing.T, fs fstest.MapFS, sess Sessions) http.Handler {
	t.Helper()
	s := New("St Mary", sess, slog.New(slog.DiscardHandler))
	if fs != nil {
		s.assets, s.built = fs, true
	}
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

func serve(h http.Handler, method, target string, body string, hdr map[string]string) *http.Response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.Host = "127.0.0.1:7480"
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

// The app's files are served with their types and the CSP; a missing
// file is 404, never index.html (an HTML answer in place of a .wasm is
// the classic SPA-fallback bug); dot files and escapes are refused; a
// binary without the built app says how to build it.
func TestAssets(t *testing.T) {
	h := newTest(t, fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><title>app</title>")},
		"app.js":             {Data: []byte("console.log(1)")},
		"codecs/decode.wasm": {Data: []byte("\x00asm\x01\x00\x00\x00")},
		".secret":            {Data: []byte("no")},
	}, &fakeSessions{})
	for _, c := range []struct {
		path, ctype string
		code        int
	}{
		{"/app/", "text/html; charset=utf-8", 200},
		{"/app/app.js", "text/javascript; charset=utf-8", 200},
		{"/app/codecs/decode.wasm", "application/wasm", 200},
		{"/app/missing.wasm", "", 404},
		{"/app/viewer/deep/route", "", 404},
		{"/app/.secret", "", 404},
	} {
		resp := serve(h, "GET", c.path, "", nil)
		if resp.StatusCode != c.code || c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: %d %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("Content-Security-Policy") != CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers %v", c.path, resp.Header)
		}
	}
	if resp := serve(h, "GET", "/", "", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
		t.Errorf("/: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	unbuilt := New("x", &fakeSessions{}, slog.New(slog.DiscardHandler))
	unbuilt.built = false
	mux := http.NewServeMux()
	unbuilt.Register(mux)
	resp := serve(mux, "GET", "/app/", "", nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(b), "make") {
		t.Errorf("unbuilt: %d %s", resp.StatusCode, b)
	}
}

func TestLogin(t *testing.T) {
	form := url.Values{"username": {"carol"}, "password": {"pw"}}.Encode()
	for _, c := range []struct {
		name   string
		err    error
		hdr    map[string]string
		body   string
		code   int
		cookie bool
		say    string
	}{
		{"ok", nil, map[string]string{"Origin": "http://127.0.0.1:7480"}, form, 303, true, ""},
		{"no origin (not a browser form of another site)", nil, nil, form, 303, true, ""},
		{"wrong password", ErrBadLogin, nil, form, 401, false, "Wrong user name or password"},
		{"backing off", &WaitError{Wait: 30 * time.Second}, nil, form, 429, false, "wait 30s"},
		{"node failure", errors.New("disk on fire"), nil, form, 500, false, "could not sign you in"},
		{"cross-site form", nil, map[string]string{"Origin": "https://evil.example"}, form, 403, false, "did not come from"},
		{"cross-site fetch", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}, form, 403, false, "did not come from"},
		{"same-origin form, origin withheld", nil, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "null"}, form, 303, true, ""},
		{"null origin, no fetch metadata", nil, map[string]string{"Origin": "null"}, form, 403, false, "did not come from"},
		{"empty fields", nil, nil, "username=&password=", 400, false, "Enter your user name"},
		{"huge form", nil, nil, "username=" + strings.Repeat("a", 20000) + "&password=x", 400, false, "could not be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTest(t, nil, &fakeSessions{err: c.err})
			resp := serve(h, "POST", "/login", c.body, c.hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.code || (len(resp.Cookies()) > 0) != c.cookie || !strings.Contains(string(b), c.say) {
				t.Errorf("%d cookies %v body %s", resp.StatusCode, resp.Cookies(), b)
			}
			if strings.Contains(string(b), "disk on fire") {
				t.Error("the node's error reached the page")
			}
		})
	}
	// Over plain HTTP to a non-loopback name the cookie cannot be Secure
	// (a browser would drop it); on loopback and TLS it is.
	h := newTest(t, nil, &fakeSessions{})
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "pacs.hospital.example:7480"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if c := w.Result().Cookies(); len(c) != 1 || c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("plain HTTP cookie %+v", c)
	}
}

func TestLogout(t *testing.T) {
	f := &fakeSessions{}
	h := newTest(t, nil, f)
	cookie := map[string]string{"Cookie": api.CookieSession + "=pns_abc"}
	if resp := serve(h, "POST", "/logout", "", cookie); resp.StatusCode != 403 || len(f.logout) != 0 {
		t.Errorf("logout without CSRF: %d", resp.StatusCode)
	}
	resp := serve(h, "POST", "/logout", "csrf="+CSRFToken("pns_abc"), cookie)
	if resp.StatusCode != 303 || len(f.logout) != 1 || f.logout[0] != "pns_abc" {
		t.Errorf("logout with the form's CSRF field: %d %v", resp.StatusCode, f.logout)
	}
	if c := resp.Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("the cookie is not cleared: %+v", c)
	}
	if CSRFToken("a") == CSRFToken("b") || !CSRFValid("a", CSRFToken("a")) || CSRFValid("a", "") {
		t.Error("CSRF tokens")
	}
}
