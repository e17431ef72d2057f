package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRoutes checks the table: names and patterns unique and valid, every
// route called by the Client method of its name and every Client method a
// route, wildcards from the Param* set, error codes known and in order.
func TestRoutes(t *testing.T) {
	params := []string{ParamPeer, ParamStudyUID, ParamSOPInstanceUID, ParamGrantID, ParamFetchID, ParamAE, ParamSendID, ParamUser, ParamTokenID, ParamRequestID}
	names, patterns := map[string]bool{}, map[string]bool{}
	mux := http.NewServeMux()
	client := reflect.TypeFor[*Client]()
	for _, r := range Routes {
		t.Run(r.Name, func(t *testing.T) {
			if r.Name == "" || names[r.Name] {
				t.Errorf("name %q empty or not unique", r.Name)
			}
			names[r.Name] = true
			if patterns[r.Pattern()] {
				t.Errorf("pattern %q not unique", r.Pattern())
			}
			patterns[r.Pattern()] = true
			func() {
				defer func() {
					if e := recover(); e != nil {
						t.Errorf("pattern %q: %v", r.Pattern(), e)
					}
				}()
				mux.HandleFunc(r.Pattern(), func(http.ResponseWriter, *http.Request) {})
			}()
			if !strings.HasPrefix(r.Path, APIPrefix+"/") {
				t.Errorf("path %s is not under %s", r.Path, APIPrefix)
			}
			for _, seg := range strings.Split(r.Path, "/") {
				if strings.HasPrefix(seg, "{") && !slices.Contains(params, strings.Trim(seg, "{}")) {
					t.Errorf("path %s: wildcard %s is not a Param* constant", r.Path, seg)
				}
			}
			if _, ok := client.MethodByName(r.Name); !ok {
				t.Errorf("no Client method %s", r.Name)
			}
			if r.Summary == "" || !strings.HasSuffix(r.Summary, ".") {
				t.Errorf("summary %q: want one sentence", r.Summary)
			}
			if r.Response == nil {
				t.Errorf("no response type")
			}
			if r.Method == http.MethodGet || r.Method == http.MethodDelete {
				if rt := reflect.TypeOf(r.Request); rt != nil && !hasQueryTags(rt) {
					t.Errorf("%s takes a body (%v): only query parameters", r.Method, rt)
				}
			}
			if !slices.Contains(r.Errors, CodeUnauthorized) {
				t.Errorf("errors lack unauthorized: every route needs the token")
			}
			for i, c := range r.Errors {
				if !slices.Contains(AllCodes(), c) {
					t.Errorf("unknown code %q", c)
				}
				if i > 0 && r.Errors[i-1].HTTPStatus() >= c.HTTPStatus() {
					t.Errorf("errors not in status order: %v", r.Errors)
				}
			}
		})
	}
	for i := range client.NumMethod() {
		if m := client.Method(i); !names[m.Name] {
			t.Errorf("Client.%s calls no route of the table", m.Name)
		}
	}
}

func hasQueryTags(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if _, ok := t.Field(i).Tag.Lookup("query"); !ok {
			return false
		}
	}
	return true
}

// documented are the types whose JSON is the contract: everything the
// routes take and answer, and what the CLI prints.
func documented() []reflect.Type {
	var out []reflect.Type
	for _, r := range Routes {
		out = append(out, reflect.TypeOf(r.Request), reflect.TypeOf(r.Response))
	}
	for _, v := range []any{InitResult{}, ImportReport{}, FetchReport{}, SynthResult{}, ErrorBody{}, Series{}} {
		out = append(out, reflect.TypeOf(v))
	}
	return out
}

var (
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// Names that other names replace: every concept has one name.
	oldNames = map[string]string{
		"uid": "study_uid", "id": "peer_id, grant_id or fetch_id", "study": "study_uid", "studies": "study_uids",
		"series": "series_uid", "grant": "grant_id", "issuer_name": "issuer.name", "origin_name": "origin.name",
		"holder_name": "holder.name", "digest": "sha256", "user": "grantee_user", "sop": "sop_instance_uid",
	}
	partnerRoles = []string{"origin", "issuer", "grantee", "holder", "peer", "requester"}
	partnerRef   = reflect.TypeFor[PartnerRef]()
	timeT        = reflect.TypeFor[time.Time]()
	rawT         = reflect.TypeFor[json.RawMessage]()
)

// TestJSONNames holds every documented type to the naming rules:
// snake_case tags on every field, no old names, a PartnerRef only under a
// role's name, peer IDs as peer_id, no JSON name twice after embedded
// structs are flattened (encoding/json would silently drop both).
func TestJSONNames(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(t *testing.T, rt reflect.Type)
	check = func(t *testing.T, rt reflect.Type) {
		for rt != nil && (rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map) && rt != rawT {
			rt = rt.Elem()
		}
		if rt == nil || rt.Kind() != reflect.Struct || rt == timeT || seen[rt] {
			return
		}
		seen[rt] = true
		names := map[string]bool{}
		var walk func(st reflect.Type)
		walk = func(st reflect.Type) {
			for i := range st.NumField() {
				f := st.Field(i)
				tag, hasJSON := f.Tag.Lookup("json")
				if q, ok := f.Tag.Lookup("query"); ok {
					tag, hasJSON = q, true
				}
				if f.Anonymous && !hasJSON {
					walk(f.Type)
					check(t, f.Type)
					continue
				}
				if !hasJSON {
					t.Errorf("%s.%s: no json tag", rt.Name(), f.Name)
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				switch {
				case !snakeCase.MatchString(name):
					t.Errorf("%s.%s: JSON name %q is not snake_case", rt.Name(), f.Name, name)
				case oldNames[name] != "":
					t.Errorf("%s.%s: JSON name %q: the concept is called %s", rt.Name(), f.Name, name, oldNames[name])
				case names[name]:
					t.Errorf("%s: JSON name %q twice", rt.Name(), name)
				}
				names[name] = true
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft == partnerRef && !slices.Contains(partnerRoles, name) {
					t.Errorf("%s.%s: a PartnerRef goes under a role's name (%v), not %q", rt.Name(), f.Name, partnerRoles, name)
				}
				if strings.Contains(f.Name, "Peer") && ft.Kind() == reflect.String && name != "peer_id" {
					t.Errorf("%s.%s: a peer ID is peer_id, not %q", rt.Name(), f.Name, name)
				}
				check(t, f.Type)
			}
		}
		walk(rt)
	}
	for _, rt := range documented() {
		check(t, rt)
	}
	if !seen[reflect.TypeFor[StudyAttributes]()] || !seen[reflect.TypeFor[AuditEntry]()] {
		t.Fatal("the walk missed types")
	}
}

// TestStudyFlattened: Study and SharedStudy carry the study attributes at
// the top level, as study_uid, like every other object.
func TestStudyFlattened(t *testing.T) {
	for _, v := range []any{Study{StudyAttributes: StudyAttributes{StudyUID: "1.2.3"}}, SharedStudy{StudyAttributes: StudyAttributes{StudyUID: "1.2.3"}}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		if m["study_uid"] != "1.2.3" {
			t.Errorf("%T: %s", v, b)
		}
	}
	b, _ := json.Marshal(Study{})
	if strings.Contains(string(b), "origin") {
		t.Errorf("a study imported here has no origin: %s", b)
	}
	b, _ = json.Marshal(FetchJob{})
	if strings.Contains(string(b), "finished") {
		t.Errorf("a running fetch has no finish time: %s", b)
	}
}

func TestCodes(t *testing.T) {
	want := map[Code]int{
		CodeBadRequest: 400, CodeUnauthorized: 401, CodeForbidden: 403, CodeNotFound: 404, CodeConflict: 409,
		CodeMethod: 405, CodeTooLarge: 413, CodeRejected: 422, CodeInternal: 500, CodeUnavailable: 503,
		CodeInsufficientStorage: 507, CodeNotAcceptable: 406, CodeUnsupportedMedia: 415, CodeTooManyRequests: 429,
	}
	if len(AllCodes()) != len(want) {
		t.Errorf("AllCodes() = %v", AllCodes())
	}
	for _, c := range AllCodes() {
		if c.HTTPStatus() != want[c] {
			t.Errorf("%s: status %d, want %d", c, c.HTTPStatus(), want[c])
		}
		if codeForStatus(c.HTTPStatus()) != c {
			t.Errorf("status %d reads back as %s, want %s", c.HTTPStatus(), codeForStatus(c.HTTPStatus()), c)
		}
	}
	if Code("frobnicated").HTTPStatus() != 500 {
		t.Error("an unknown code is not 500")
	}
	if codeForStatus(418) != CodeBadRequest || codeForStatus(502) != CodeInternal {
		t.Error("statuses outside the table")
	}
	var err error = &Error{Status: 404, Code: CodeNotFound, Message: "no study"}
	if err.Error() != "no study" {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestImportResultHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		r    ImportResult
		want int
	}{
		{ImportResult{Outcome: OutcomeStored}, 200},
		{ImportResult{Outcome: OutcomeDuplicate}, 200},
		{ImportResult{Outcome: OutcomeConflict}, 409},
		{ImportResult{Outcome: OutcomeRejected, Code: "missing-attribute"}, 422},
		{ImportResult{Outcome: OutcomeRejected, Code: "too-large"}, 413},
		{ImportResult{Outcome: OutcomeFailed}, 500},
		{ImportResult{Outcome: OutcomeFailed, Code: "insufficient-storage"}, 507},
		{ImportResult{}, 500},
	} {
		if got := tc.r.HTTPStatus(); got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.r, got, tc.want)
		}
	}
}

func TestExportPath(t *testing.T) {
	hashed := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "x" + hex.EncodeToString(sum[:16])
	}
	long := strings.Repeat("1", 65)
	for _, tc := range []struct{ series, sop, want string }{
		{"1.2.3", "1.2.3.4", "1.2.3/1.2.3.4.dcm"},
		{"1.2.3", "../../etc/passwd", "1.2.3/" + hashed("../../etc/passwd") + ".dcm"},
		{"..", "1.2", hashed("..") + "/1.2.dcm"},
		{".", "1.2", hashed(".") + "/1.2.dcm"},
		{"", "1.2", hashed("") + "/1.2.dcm"},
		{"SMITH^JOHN", "1.2", hashed("SMITH^JOHN") + "/1.2.dcm"},
		{long, "1.2", hashed(long) + "/1.2.dcm"},
		{strings.Repeat("1", 64), "1.2", strings.Repeat("1", 64) + "/1.2.dcm"},
	} {
		if got := ExportPath(tc.series, tc.sop); got != tc.want {
			t.Errorf("ExportPath(%q, %q) = %q, want %q", tc.series, tc.sop, got, tc.want)
		}
	}
}

// Every Act* constant the api package declares can be named in an audit
// filter: AuditActions lists them all.
func TestAuditActionsListsEveryAction(t *testing.T) {
	src, err := os.ReadFile("types.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+(Act[A-Za-z]+)\s+= "([a-z0-9-]+)"`).FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(AuditActions, m[2]) {
			t.Errorf("%s (%q) is missing from AuditActions", m[1], m[2])
		}
	}
}

// Every route says who may call it: at least one known role, or Public
// (login only); the node enforces it centrally (issue 8).
func TestRoutesDeclareRoles(t *testing.T) {
	known := map[string]bool{RoleAdmin: true, RoleClinician: true, RoleAuditor: true}
	for _, r := range Routes {
		if r.Public {
			if len(r.Roles) != 0 || r.Name != "Login" {
				t.Errorf("%s: public routes are login only, without roles", r.Name)
			}
			continue
		}
		if len(r.Roles) == 0 {
			t.Errorf("%s declares no roles", r.Name)
		}
		for _, role := range r.Roles {
			if !known[role] {
				t.Errorf("%s: unknown role %q", r.Name, role)
			}
		}
		if !slices.Contains(r.Roles, RoleAdmin) {
			t.Errorf("%s: admin (the node's own token) must be able to call every route", r.Name)
		}
	}
}
