// Package apidoc generates docs/api.md from package api: its route table,
// the types the routes and the CLI use (reflection over their json and
// query tags) and the comments of api's Go source.
package apidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// Commands are the CLI commands with --json and the api type each prints.
// The CLI's own test (cmd/pacsnet) decodes each command's output into the
// same type with unknown fields disallowed.
var Commands = []struct {
	Command string
	Prints  any
}{
	{"pacsnet init", api.InitResult{}},
	{"pacsnet status", api.Status{}},
	{"pacsnet invite", api.Invite{}},
	{"pacsnet peer add", api.Partner{}},
	{"pacsnet peer remove", api.Partner{}},
	{"pacsnet peers", []api.Partner{}},
	{"pacsnet peer list", []api.Partner{}},
	{"pacsnet import", api.ImportReport{}},
	{"pacsnet studies", []api.Study{}},
	{"pacsnet grant", api.Grant{}},
	{"pacsnet grants", []api.Grant{}},
	{"pacsnet revoke", api.Revocation{}},
	{"pacsnet shared", []api.SharedStudy{}},
	{"pacsnet fetch", api.FetchReport{}},
	{"pacsnet export", api.ExportResult{}},
	{"pacsnet audit", []api.AuditEntry{}},
	{"pacsnet audit --verify", api.AuditVerify{}},
	{"pacsnet synth", api.SynthResult{}},
	{"pacsnet version", api.Version{}},
	{"pacsnet ae add", api.AE{}},
	{"pacsnet ae remove", api.AE{}},
	{"pacsnet ae list", []api.AE{}},
	{"pacsnet user add", api.UserPassword{}},
	{"pacsnet user list", []api.User{}},
	{"pacsnet user disable", api.User{}},
	{"pacsnet user passwd", api.UserPassword{}},
	{"pacsnet user role", api.User{}},
	{"pacsnet token add", api.TokenIssued{}},
	{"pacsnet token list", []api.Token{}},
	{"pacsnet token revoke", api.Token{}},
}

// extraTypes are documented although no route uses them yet.
var extraTypes = []any{api.ErrorBody{}, api.Series{}}

var (
	timeType  = reflect.TypeFor[time.Time]()
	rawType   = reflect.TypeFor[json.RawMessage]()
	codeType  = reflect.TypeFor[api.Code]()
	dicomType = reflect.TypeFor[api.DICOMBody]()
	apiPkg    = reflect.TypeFor[api.Route]().PkgPath()
)

// source is what the generator takes from api's Go source: comments.
type source struct {
	typeDoc  map[string]string            // type name → doc comment
	fieldDoc map[string]map[string]string // type name → field name → comment
	consts   []constGroup                 // exported string constants, by declaration
	constDoc map[string]string            // constant value (of Param* and Code*) → comment
}

type constGroup struct {
	doc   string
	items []constItem
}

type constItem struct{ name, value, doc string }

// Generate returns docs/api.md. dir is the api package's source folder.
func Generate(dir string) ([]byte, error) {
	src, err := parseSource(dir)
	if err != nil {
		return nil, err
	}
	g := &gen{src: src, seen: map[reflect.Type]bool{}}
	return g.markdown(), nil
}

func parseSource(dir string) (*source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	src := &source{typeDoc: map[string]string{}, fieldDoc: map[string]map[string]string{}, constDoc: map[string]string{}}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		if f.Name.Name != "api" {
			return nil, fmt.Errorf("%s: package %s, want api", name, f.Name.Name)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			switch gd.Tok {
			case token.TYPE:
				for _, s := range gd.Specs {
					ts := s.(*ast.TypeSpec)
					doc := ts.Doc
					if doc == nil && len(gd.Specs) == 1 {
						doc = gd.Doc
					}
					src.typeDoc[ts.Name.Name] = text(doc)
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						continue
					}
					fd := map[string]string{}
					for _, fl := range st.Fields.List {
						c := text(fl.Doc)
						if c == "" {
							c = text(fl.Comment)
						}
						for _, n := range fl.Names {
							fd[n.Name] = c
						}
					}
					src.fieldDoc[ts.Name.Name] = fd
				}
			case token.CONST:
				grp := constGroup{doc: text(gd.Doc)}
				for _, s := range gd.Specs {
					vs := s.(*ast.ValueSpec)
					if len(vs.Names) != 1 || len(vs.Values) != 1 || !vs.Names[0].IsExported() {
						continue
					}
					lit, ok := vs.Values[0].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						return nil, err
					}
					c := text(vs.Comment)
					if c == "" {
						c = text(vs.Doc)
					}
					name := vs.Names[0].Name
					grp.items = append(grp.items, constItem{name, v, c})
					if strings.HasPrefix(name, "Param") || strings.HasPrefix(name, "Code") {
						src.constDoc[v] = c
					}
				}
				if len(grp.items) > 0 {
					src.consts = append(src.consts, grp)
				}
			}
		}
	}
	return src, nil
}

// docLink is a Go doc link, [Name] or [Type.Method].
var docLink = regexp.MustCompile(`\[(\*?[A-Z][A-Za-z0-9]*(\.[A-Za-z0-9]+)?)\]`)

// text is a comment as one line of Markdown.
func text(cg *ast.CommentGroup) string {
	if cg == nil {
		return ""
	}
	s := strings.Join(strings.Fields(cg.Text()), " ")
	return docLink.ReplaceAllString(s, "`$1`")
}

type gen struct {
	src   *source
	b     bytes.Buffer
	types []reflect.Type // named struct types to document, in order of first use
	seen  map[reflect.Type]bool
}

func (g *gen) p(format string, a ...any) { fmt.Fprintf(&g.b, format, a...) }

func (g *gen) markdown() []byte {
	g.p("# The local API\n\n")
	g.p("<!-- Code generated by `go generate ./api` (go run ./api/internal/gendoc); DO NOT EDIT. -->\n\n")
	g.p("This file is generated from package `api` (`github.com/pacsnet/pacsnet/api`): its route table\n")
	g.p("`api.Routes`, its types and their comments. `go test ./api` fails when the file differs from what\n")
	g.p("the code generates; run `go generate ./api` after changing the package.\n\n")
	g.p("`pacsnet serve` serves the API on `http_addr` (127.0.0.1:7480 by default) and writes the URL to\n")
	g.p("`HOME/run/api.json`. Every request carries `Authorization: Bearer <token>`, the token being\n")
	g.p("`HOME/keys/api.token`. Bodies are JSON (`%s`) unless a route says DICOM (`%s`).\n", api.ContentTypeJSON, api.ContentTypeDICOM)
	g.p("Times are RFC 3339 strings, sizes are bytes, names are snake_case, and each concept has one shape\n")
	g.p("and the same names everywhere: a partner is `peer_id` (a `PartnerRef` under a field named for its\n")
	g.p("role), a study `study_uid`, a series `series_uid`, an instance `sop_instance_uid`, a grant\n")
	g.p("`grant_id`, a fetch `fetch_id`. Every path starts with `%s`; a path parameter is one\n", api.APIPrefix)
	g.p("percent-escaped segment. Go clients use `api.Client`.\n\n")
	g.p("## Who may call what\n\n")
	g.p("A bearer token is the node's admin token (`HOME/keys/api.token`, role admin, for the CLI on the\n")
	g.p("node's machine), a user's API token (`pacsnet token add`) or a session token from `POST %s/login`.\n", api.APIPrefix)
	g.p("A missing, wrong, expired or revoked token, or one of a disabled user, is `unauthorized` (401).\n")
	g.p("Each route lists the roles that may call it; any other role is answered `forbidden` (403), naming\n")
	g.p("the roles needed. Roles: `admin` (partners, grants, users, DICOM AEs, audit), `clinician`\n")
	g.p("(studies: import, view, export, fetch, send), `auditor` (the audit trail only).\n\n")

	g.p("## DICOMweb\n\n")
	g.p("The same port serves DICOMweb (PS3.18: QIDO-RS, WADO-RS, STOW-RS) under `%s`, with the same\n", api.DICOMwebRoot)
	g.p("bearer tokens (roles admin and clinician). Its resources are the standard's, not routes of this\n")
	g.p("API: [docs/conformance.md](conformance.md#dicomweb-ps318) lists them, with the query keys, media\n")
	g.p("types, transfer syntaxes and status codes. Its errors have this API's error body.\n\n")

	g.p("## Errors\n\n")
	g.p("An error answer has the HTTP status of its code and the body %s, except where a route says\n", g.link(reflect.TypeFor[api.ErrorBody]()))
	g.p("otherwise. `api.Client` returns it as an `*api.Error`.\n\n")
	g.p("| code | HTTP status | meaning |\n|---|---|---|\n")
	for _, c := range api.AllCodes() {
		g.p("| `%s` | %d | %s |\n", c, c.HTTPStatus(), cell(g.src.constDoc[string(c)]))
	}
	g.p("\n")

	g.p("## Routes\n\n| method | path | does | `api.Client` |\n|---|---|---|---|\n")
	for _, r := range api.Routes {
		g.p("| %s | [`%s`](#route-%s) | %s | `%s` |\n", r.Method, r.Path, r.Name, cell(r.Summary), r.Name)
	}
	g.p("\n")
	for _, r := range api.Routes {
		g.route(r)
	}

	for _, c := range Commands {
		g.use(reflect.TypeOf(c.Prints))
	}
	for _, t := range extraTypes {
		g.use(reflect.TypeOf(t))
	}
	g.p("## Command output\n\n")
	g.p("Every `pacsnet` command with `--json` prints exactly one JSON document on stdout, of one of the\n")
	g.p("types below; `cmd/pacsnet`'s tests decode each with unknown fields disallowed.\n\n")
	g.p("| command | prints |\n|---|---|\n")
	for _, c := range Commands {
		g.p("| `%s --json` | %s |\n", c.Command, g.typeName(reflect.TypeOf(c.Prints)))
	}
	g.p("\n## Types\n\n")
	for i := 0; i < len(g.types); i++ { // g.types grows while fields are documented
		g.typ(g.types[i])
	}

	g.p("## Values\n\nThe constants of package `api`: the values of the fields that name them.\n\n")
	for _, grp := range g.src.consts {
		if strings.HasPrefix(grp.items[0].name, "Code") {
			continue // the table of errors above
		}
		if grp.doc != "" {
			g.p("%s\n\n", grp.doc)
		}
		g.p("| constant | value | meaning |\n|---|---|---|\n")
		for _, it := range grp.items {
			g.p("| `%s` | `%s` | %s |\n", it.name, it.value, cell(it.doc))
		}
		g.p("\n")
	}
	return bytes.TrimRight(g.b.Bytes(), "\n")
}

func (g *gen) route(r api.Route) {
	g.p("<a id=\"route-%s\"></a>\n\n### `%s %s`\n\n%s\n\n", r.Name, r.Method, r.Path, r.Summary)
	if r.Doc != "" {
		g.p("%s\n\n", r.Doc)
	}
	g.p("- Client: `api.Client.%s`\n", r.Name)
	if r.Public {
		g.p("- Roles: anyone (no token needed)\n")
	} else {
		g.p("- Roles: %s\n", strings.Join(r.Roles, ", "))
	}
	if params := pathParams(r.Path); len(params) > 0 {
		g.p("- Path parameters:")
		for i, p := range params {
			sep := ";"
			if i == len(params)-1 {
				sep = ""
			}
			g.p(" `%s` (%s)%s", p, g.src.constDoc[p], sep)
		}
		g.p("\n")
	}
	switch rt := reflect.TypeOf(r.Request); {
	case rt == nil:
		g.p("- Request: no body\n")
	case rt == dicomType:
		g.p("- Request: %s\n", g.typeName(rt))
	case isQuery(rt):
		g.p("- Query parameters: %s\n", g.typeName(rt))
	default:
		g.p("- Request: %s\n", g.typeName(rt))
	}
	if rt := reflect.TypeOf(r.Response); rt == nil {
		g.p("- Answer (200): no body\n")
	} else {
		g.p("- Answer (200): %s\n", g.typeName(rt))
	}
	var errs []string
	for _, c := range r.Errors {
		errs = append(errs, fmt.Sprintf("`%s` (%d)", c, c.HTTPStatus()))
	}
	g.p("- Errors: %s\n\n", strings.Join(errs, ", "))
}

// pathParams lists the wildcards of a route path.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(seg[1:], "}"))
		}
	}
	return out
}

func isQuery(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	for i := range t.NumField() {
		if _, ok := t.Field(i).Tag.Lookup("query"); ok {
			return true
		}
	}
	return false
}

// use queues a named api struct type (and those it holds) for the Types
// section.
func (g *gen) use(t reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		if t == rawType || t == dicomType {
			return
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() != apiPkg || g.seen[t] {
		return
	}
	g.seen[t] = true
	g.types = append(g.types, t)
}

// typeName is how a field or body type reads in the docs, linking api
// types.
func (g *gen) typeName(t reflect.Type) string {
	switch {
	case t == timeType:
		return "time (RFC 3339)"
	case t == rawType:
		return "JSON (as signed)"
	case t == codeType:
		return "string ([code](#errors))"
	case t == dicomType:
		return "DICOM bytes (`" + api.ContentTypeDICOM + "`)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeName(t.Elem())
	case reflect.Slice:
		return "array of " + g.typeName(t.Elem())
	case reflect.Map:
		return "object: " + g.typeName(t.Key()) + " → " + g.typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32, reflect.Uint:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Struct:
		g.use(t)
		return g.link(t)
	}
	return t.String()
}

func (g *gen) link(t reflect.Type) string {
	g.use(t)
	return fmt.Sprintf("[%s](#type-%s)", t.Name(), t.Name())
}

// typ documents one struct type: its fields as they appear in JSON (or in
// the query string), embedded structs flattened.
func (g *gen) typ(t reflect.Type) {
	g.p("<a id=\"type-%s\"></a>\n\n### %s\n\n", t.Name(), t.Name())
	if d := g.src.typeDoc[t.Name()]; d != "" {
		g.p("%s\n\n", d)
	}
	query := isQuery(t)
	if query {
		g.p("| query parameter | type | notes | meaning |\n|---|---|---|---|\n")
	} else {
		g.p("| field | type | notes | meaning |\n|---|---|---|---|\n")
	}
	g.fields(t, query, "")
	g.p("\n")
}

func (g *gen) fields(t reflect.Type, query bool, from string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if query {
			tag = f.Tag.Get("query")
		}
		if f.Anonymous && tag == "" {
			g.use(f.Type)
			g.fields(f.Type, query, f.Type.Name())
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		var notes []string
		if strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") || f.Type.Kind() == reflect.Pointer {
			notes = append(notes, "omitted when empty")
		}
		if from != "" {
			notes = append(notes, "from "+g.link(t))
		}
		doc := g.src.fieldDoc[t.Name()][f.Name]
		g.p("| `%s` | %s | %s | %s |\n", name, g.typeName(f.Type), strings.Join(notes, "; "), cell(doc))
	}
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
