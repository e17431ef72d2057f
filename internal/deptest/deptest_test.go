package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the module whose packages are checked.
const module = "github.com/pacsnet/pacsnet"

// our returns the import path of a package of ours, given relative to the
// module ("crypto", "node/...").
func our(p string) string { return module + "/" + p }

// A rule forbids some imports to some of our packages.
//
// Patterns are import paths; one ending in "/..." also matches every
// package below it, as in the go command.
type rule struct {
	name string   // subtest name: `go test -run TestDeps/<name>`
	pkgs []string // the packages the rule is about
	skip []string // packages of pkgs the rule is not about

	// direct restricts the rule to the packages' own imports. By default
	// it applies to their whole transitive dependencies: a forbidden
	// package pulled in through a permitted one is as present.
	direct bool
	// tests also checks what the packages' tests (_test.go files, both
	// in-package and external) import. Rules are about what the packages
	// build into a binary, so this is off unless the rule says so: tests
	// may use helpers (dicomio's tests use dicomio/synth to make data),
	// and the go command already refuses import cycles.
	tests bool
	// optional: the rule's packages need not exist yet (they are being
	// written); the rule is skipped until they do.
	optional bool

	deny     []deny   // forbidden imports
	allow    []string // imports allowed although a deny pattern matches them
	stdOnly  string   // if set: nothing outside the standard library, for this reason
	requires []deny   // imports that must be present, each with why
}

type deny struct{ pattern, why string }

// rules is the layering of docs/architecture.md. Keep the reason next to
// each rule: it is what the failure prints.
var rules = []rule{
	{
		name: "crypto",
		pkgs: []string{our("crypto/...")},
		deny: []deny{{our("..."), "crypto is the bottom layer: keys, signatures and encryption are reviewed on their own, " +
			"and everything else depends on it"}},
		allow: []string{our("crypto/..."), our("internal/durable")},
	},
	{
		name: "durable",
		pkgs: []string{our("internal/durable")},
		stdOnly: "synced, atomic file writes are shared by crypto (key files), the archive, the home and the audit " +
			"shipper, below all of them: it must not import anything of ours or anyone else's",
	},
	{
		name: "dicomio",
		pkgs: []string{our("dicomio")},
		deny: []deny{{our("..."), "dicomio is functions over bytes and readers: it knows nothing of encryption, consent, " +
			"the network or the node, which all build on it"}},
		allow: []string{our("internal/uid")},
	},
	{
		name: "uid",
		pkgs: []string{our("internal/uid")},
		stdOnly: "the one UID rule is shared by dicomio, consent, wire, node and the CLI, below all of them: " +
			"it must not import anything of ours or anyone else's",
	},
	{
		name: "dicomio-subpackages",
		pkgs: []string{our("dicomio/...")},
		skip: []string{our("dicomio")},
		deny: []deny{{our("..."), "dicomio's subpackages (synth, and the DIMSE and DICOMweb front ends) sit on dicomio " +
			"and nothing else of ours"}},
		allow: []string{our("dicomio"), our("internal/uid")},
	},
	{
		// synth's tests too, as before: any package's tests use synth to
		// make DICOM, so synth must not lead back into node or exchange.
		name:  "dicomio-synth-tests",
		pkgs:  []string{our("dicomio/synth")},
		tests: true,
		deny: []deny{{our("..."), "synth makes test data for every package's tests: of pacsnet it may use only dicomio, " +
			"in its tests too, so no test that uses it is pulled towards node or exchange"}},
		allow: []string{our("dicomio"), our("dicomio/synth"), our("internal/uid")},
	},
	{
		name: "exchange",
		pkgs: []string{our("exchange/...")},
		deny: []deny{{our("..."), "exchange is the wire layer: it moves sealed bytes it never opens and asks node for " +
			"decisions and data through its own small interfaces (Partners, Authorizer, BlockStore, ManifestHandler, ManifestSource)"}},
		allow: []string{our("exchange/...")},
	},
	{
		name: "consent",
		pkgs: []string{our("consent/...")},
		deny: []deny{
			{our("..."), "consent is pure logic under node; of pacsnet it imports only crypto, to sign and verify"},
			{"github.com/dgraph-io/...", "storage comes in through consent.Store; node plugs Badger in"},
			{"github.com/libp2p/go-libp2p/p2p/...", "consent uses only libp2p's core peer and key types: no hosts or transports"},
		},
		allow: []string{our("crypto"), our("consent/..."), our("internal/uid"), our("internal/durable")},
	},
	{
		// Direct only: the libp2p key types consent needs import these
		// themselves; what matters is that consent does not use them.
		name:   "consent-pure",
		pkgs:   []string{our("consent/...")},
		direct: true,
		deny: []deny{
			{"net/...", "consent does no networking: exchange asks for decisions through an interface"},
			{"os/...", "storage comes in through consent.Store; consent touches no files"},
			{"log/...", "consent returns decisions and audit entries; node decides what to log"},
			{"math/rand/...", "grant IDs must be unpredictable: crypto/rand only"},
		},
	},
	{
		name: "transfer",
		pkgs: []string{our("transfer/...")},
		deny: []deny{
			{our("..."), "transfer is the engine alone: the node plugs sources and a sink into it, so it needs " +
				"none of node, exchange, consent, crypto or dicomio"},
			{"github.com/libp2p/...", "sources hide the network: the engine runs the same over libp2p streams, a simulator or memory"},
			{"github.com/dgraph-io/...", "the sink hides the store"},
		},
		allow: []string{our("transfer/...")},
	},
	{
		name:   "transfer-quiet",
		pkgs:   []string{our("transfer/...")},
		direct: true,
		deny: []deny{
			{"log/...", "the engine reports through Progress and Result; the caller logs"},
		},
	},
	{
		name: "web",
		pkgs: []string{our("web/...")},
		deny: []deny{
			{our("..."), "web serves the login form and the app's assets; every rule about who may see or change " +
				"what is the node's, on its API routes: web knows only the API's names (cookie, header) and asks a " +
				"Sessions for logins"},
			{"github.com/dgraph-io/...", "web keeps no records: node/internal/store does"},
		},
		allow: []string{our("web/..."), our("api")},
	},
	{
		name: "access",
		pkgs: []string{our("access/...")},
		deny: []deny{
			{our("..."), "access is the pure logic of local users (hashes, secrets, back-off): the node's users room " +
				"stores and serves what it computes, so it imports nothing of pacsnet"},
			{"github.com/dgraph-io/...", "access keeps no records: node/internal/store does"},
		},
		allow: []string{our("access/...")},
	},
	{
		name:   "access-pure",
		pkgs:   []string{our("access/...")},
		direct: true,
		deny: []deny{
			{"net/...", "access does no networking: the node passes it addresses as strings"},
			{"os/...", "access touches no files"},
			{"math/rand/...", "secrets, salts and passwords must be unpredictable: crypto/rand only"},
		},
	},
	{
		name: "wire",
		pkgs: []string{our("internal/wire/...")},
		deny: []deny{
			{our("..."), "wire is the formats alone: of pacsnet it may use crypto (signatures, study keys) and consent " +
				"(signed grants), so that node's parts and tools share the formats without importing node"},
			{"github.com/dgraph-io/...", "wire is pure functions over bytes: no storage"},
			{"github.com/libp2p/go-libp2p/p2p/...", "wire uses only libp2p's core peer and key types: no hosts or transports"},
		},
		allow: []string{our("crypto"), our("consent"), our("internal/wire/..."), our("internal/uid"), our("internal/durable")},
	},
	{
		name:   "wire-pure",
		pkgs:   []string{our("internal/wire/...")},
		direct: true,
		deny: []deny{
			{"net/...", "wire is pure functions: no I/O"},
			{"os/...", "wire is pure functions: no I/O"},
			{"log/...", "wire returns errors with reasons; the caller logs"},
		},
	},
	{
		name:     "api",
		pkgs:     []string{our("api")},
		optional: true,
		stdOnly: "api is what clients (the CLI, scripts, the web app's tooling) link to talk to a node: " +
			"it must not pull in the node, libp2p, Badger or anything but the standard library",
	},
	{
		name: "node",
		pkgs: []string{our("node/...")},
		deny: []deny{
			{our("cmd/..."), "node is driven by the CLI, never the other way round"},
			{our("netsim/..."), "netsim builds nodes; a node must not know it is simulated"},
		},
	},
	{
		// Direct only: everything that uses the archive depends on Badger
		// through the store, which is the point.
		name:   "badger-only-in-store",
		pkgs:   []string{our("...")},
		skip:   []string{our("node/internal/store")},
		direct: true,
		deny: []deny{{"github.com/dgraph-io/badger/v4/...", "Badger is the archive's engine, and only node/internal/store " +
			"may know it: one place holds the key layout, transactions and sync rules"}},
	},
	{
		name:   "cli",
		pkgs:   []string{our("cmd/pacsnet")},
		direct: true,
		deny: []deny{
			{our("consent/..."), "the CLI talks to a running node over its local API (package api), not to the layers below"},
			{our("exchange/..."), "the CLI talks to a running node over its local API (package api), not to the layers below"},
			{our("crypto/..."), "the CLI talks to a running node over its local API (package api), not to the layers below"},
			{our("dicomio/..."), "the CLI talks to a running node over its local API (package api); it may only make test data with dicomio/synth"},
		},
		allow:    []string{our("dicomio/synth")},
		requires: []deny{{our("api"), "the CLI's requests and answers are the api package's types, so they cannot drift from the node's"}},
	},
	{
		name: "netsim",
		pkgs: []string{our("netsim/...")},
		deny: []deny{{our("cmd/..."), "netsim builds nodes with node's constructor, not through the CLI"}},
	},
	{
		// Direct only: the nodes netsim opens import everything, which is
		// the point; netsim itself must only build them and drive them.
		name:   "netsim-drives-nodes",
		pkgs:   []string{our("netsim/...")},
		direct: true,
		deny: []deny{{our("..."), "netsim never reimplements protocol logic: it opens real nodes (node) and drives them " +
			"through their local API (api), with synthetic studies (dicomio/synth); consent, exchange, crypto, transfer " +
			"and the wire formats are the nodes' business"}},
		allow: []string{our("node"), our("api"), our("dicomio/synth"), our("netsim/...")},
	},
	{
		// The CLI's rule above is about its own imports: cmd/pacsnet may
		// import netsim (it does not break "the CLI talks to a node over
		// api": the simulator runs nodes in-process, which `pacsnet netsim`
		// starts). Nothing else may.
		name:   "netsim-only-from-cli",
		pkgs:   []string{our("...")},
		skip:   []string{our("cmd/pacsnet"), our("netsim/...")},
		direct: true,
		deny: []deny{{our("netsim/..."), "the simulator runs nodes in-process for `pacsnet netsim` alone: " +
			"no node, library or tool may depend on it"}},
	},
}

// match reports whether path matches pattern.
func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// isStd is the go command's own test for a standard-library path: no dot
// in the first element.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// pkg is one package as `go list -test` reports it.
type pkg struct {
	ImportPath string
	ForTest    string   // set on the variants built for a package's tests
	Imports    []string // direct imports
	Deps       []string // all transitive dependencies
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// stripTestSuffix turns the name go list gives a package compiled for a
// test, "p [q.test]", back into the import path p.
func stripTestSuffix(s string) string {
	if i := strings.Index(s, " ["); i >= 0 {
		return s[:i]
	}
	return s
}

// packages runs go list once for the whole module. plain maps each
// package to its build; tests maps it to the variants its tests build
// (the package with its _test.go files, and the external _test package).
func packages(t *testing.T) (plain map[string]*pkg, tests map[string][]*pkg) {
	t.Helper()
	gobin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-e", "-test",
		"-json=ImportPath,ForTest,Imports,Deps,Error,DepsErrors", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	plain, tests = map[string]*pkg{}, map[string][]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		for i, s := range p.Imports {
			p.Imports[i] = stripTestSuffix(s)
		}
		for i, s := range p.Deps {
			p.Deps[i] = stripTestSuffix(s)
		}
		switch {
		case p.ForTest != "":
			tests[p.ForTest] = append(tests[p.ForTest], p)
		case strings.HasSuffix(p.ImportPath, ".test"):
			// the generated main package of a test binary
		default:
			plain[p.ImportPath] = p
		}
	}
	if len(plain) == 0 {
		t.Fatal("go list found no packages")
	}
	return plain, tests
}

// TestDeps checks every rule against every package it is about. Each rule
// is a subtest, so a failure names the rule and `go test -run
// TestDeps/<name>` checks one.
func TestDeps(t *testing.T) {
	plain, tests := packages(t)
	var paths []string
	for path, p := range plain {
		paths = append(paths, path)
		// A package that does not load has incomplete dependencies:
		// nothing can be said about it, and the build fails anyway.
		if p.Error != nil {
			t.Errorf("%s does not load: %s", path, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Errorf("%s: a dependency does not load: %s", path, e.Err)
		}
	}
	slices.Sort(paths)
	exists := func(pattern string) bool {
		return slices.ContainsFunc(paths, func(path string) bool { return match(pattern, path) })
	}

	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			var ruled []string
			for _, path := range paths {
				if matchAny(r.pkgs, path) && !matchAny(r.skip, path) {
					ruled = append(ruled, path)
				}
			}
			if len(ruled) == 0 {
				if r.optional {
					t.Skipf("no package matches %v yet", r.pkgs)
				}
				t.Fatalf("no package matches %v: a stale rule, or a package was moved", r.pkgs)
			}
			for _, path := range ruled {
				for _, v := range violations(r, path, plain[path], tests[path], exists) {
					t.Error(v)
				}
			}
		})
	}
}

// violations applies rule r to the package path (p, and the variants its
// tests build) and describes each breach. exists says whether a package
// matching a pattern is in the module.
func violations(r rule, path string, p *pkg, testVariants []*pkg, exists func(pattern string) bool) []string {
	list := func(p *pkg) []string {
		if r.direct {
			return p.Imports
		}
		return p.Deps
	}
	how := "depends on"
	if r.direct {
		how = "imports"
	}
	type source struct {
		what string // who has the import, and how
		deps []string
	}
	sources := []source{{path + " " + how, list(p)}}
	if r.tests {
		for _, v := range testVariants {
			sources = append(sources, source{"the tests of " + path + " (" + v.ImportPath + ") " + how, list(v)})
		}
	}
	var out []string
	for _, src := range sources {
		for _, dep := range src.deps {
			if dep == path || matchAny(r.allow, dep) {
				continue
			}
			if r.stdOnly != "" && !isStd(dep) {
				out = append(out, src.what+" "+dep+": "+r.stdOnly)
			}
			for _, d := range r.deny {
				if match(d.pattern, dep) {
					out = append(out, src.what+" "+dep+": "+d.why)
				}
			}
		}
	}
	for _, req := range r.requires {
		if exists(req.pattern) && !slices.ContainsFunc(list(p), func(dep string) bool { return match(req.pattern, dep) }) {
			out = append(out, path+" does not import "+req.pattern+": "+req.why)
		}
	}
	return out
}

// TestViolations checks the checker on made-up packages, so that a rule
// that passes is known to be able to fail.
func TestViolations(t *testing.T) {
	ruleNamed := func(name string) rule {
		for _, r := range rules {
			if r.name == name {
				return r
			}
		}
		t.Fatalf("no rule %q", name)
		return rule{}
	}
	none := func(string) bool { return false }
	all := func(string) bool { return true }
	tests := []struct {
		rule     string
		path     string
		p        pkg
		variants []*pkg
		exists   func(string) bool
		want     int
	}{
		{"crypto", our("crypto"), pkg{Deps: []string{"fmt", "github.com/libp2p/go-libp2p/core/peer"}}, nil, none, 0},
		{"crypto", our("crypto"), pkg{Deps: []string{"fmt", our("dicomio"), our("node/internal/store")}}, nil, none, 2},
		{"consent", our("consent"), pkg{Deps: []string{our("crypto"), "net"}}, nil, none, 0},
		{"consent", our("consent"), pkg{Deps: []string{our("crypto"), "github.com/dgraph-io/badger/v4"}}, nil, none, 1},
		{"consent-pure", our("consent"), pkg{Imports: []string{"net/http", "math/rand/v2", "crypto/rand"}, Deps: []string{"os"}}, nil, none, 2},
		{"wire", our("internal/wire"), pkg{Deps: []string{our("crypto"), our("consent"), our("exchange")}}, nil, none, 1},
		{"api", our("api"), pkg{Deps: []string{"net/http", "github.com/libp2p/go-libp2p/core/peer"}}, nil, none, 1},
		{"node", our("node/internal/store"), pkg{Deps: []string{our("netsim"), our("cmd/internal/facility")}}, nil, none, 2},
		{"badger-only-in-store", our("node"), pkg{Imports: []string{our("node/internal/store")}, Deps: []string{"github.com/dgraph-io/badger/v4"}}, nil, none, 0},
		{"badger-only-in-store", our("node"), pkg{Imports: []string{"github.com/dgraph-io/badger/v4/options"}}, nil, none, 1},
		{"cli", our("cmd/pacsnet"), pkg{Imports: []string{our("node"), our("dicomio/synth")}, Deps: []string{our("consent")}}, nil, none, 0},
		{"cli", our("cmd/pacsnet"), pkg{Imports: []string{our("node"), our("dicomio/synth")}}, nil, all, 1},
		{"cli", our("cmd/pacsnet"), pkg{Imports: []string{our("api"), our("consent"), our("dicomio"), our("crypto")}}, nil, all, 3},
		{"netsim-drives-nodes", our("netsim"), pkg{Imports: []string{our("node"), our("api"), our("dicomio/synth")}}, nil, none, 0},
		{"netsim-drives-nodes", our("netsim"), pkg{Imports: []string{our("node"), our("consent"), our("exchange")}}, nil, none, 2},
		{"netsim-only-from-cli", our("node"), pkg{Imports: []string{our("netsim")}}, nil, none, 1},
		{"dicomio-subpackages", our("dicomio/dimse"), pkg{Deps: []string{our("dicomio"), our("crypto")}}, nil, none, 1},
		{"dicomio-synth-tests", our("dicomio/synth"), pkg{Deps: []string{our("dicomio")}},
			[]*pkg{{ImportPath: our("dicomio/synth_test [x]"), Deps: []string{our("dicomio/synth"), our("node")}}}, none, 1},
		{"dicomio", our("dicomio"), pkg{Deps: []string{"bytes"}},
			[]*pkg{{ImportPath: our("dicomio_test [x]"), Deps: []string{our("dicomio/synth")}}}, none, 0},
	}
	for _, tt := range tests {
		got := violations(ruleNamed(tt.rule), tt.path, &tt.p, tt.variants, tt.exists)
		if len(got) != tt.want {
			t.Errorf("rule %s on %s: %d violations, want %d: %q", tt.rule, tt.path, len(got), tt.want, got)
		}
	}
}
