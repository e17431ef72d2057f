package auditlog

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestEveryActionMapped reads the Act* constants of consent and api from
// source (auditlog must not import api) and checks that each one has a
// deliberate row in events, so a new action cannot silently become
// Application Activity.
func TestEveryActionMapped(t *testing.T) {
	actName := regexp.MustCompile(`^Act[A-Z]`)
	seen := 0
	for _, file := range []string{"../consent/audit.go", "../api/types.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.FromSlash(file), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !actName.MatchString(name.Name) || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				action, _ := strconv.Unquote(lit.Value)
				seen++
				if _, ok := events[action]; !ok {
					t.Errorf("%s: %s = %q has no row in events", file, name.Name, action)
				}
			}
			return true
		})
	}
	if seen < 30 {
		t.Fatalf("found only %d Act* constants; did the files move?", seen)
	}
}

func TestEventTable(t *testing.T) {
	for action, ev := range events {
		switch ev.Action {
		case "C", "R", "U", "D", "E":
		default:
			t.Errorf("%s: EventActionCode %q", action, ev.Action)
		}
		// PS3.15 A.5.3: these events require an EventTypeCode.
		if (ev.ID == evSecurityAlert || ev.ID == evUserAuthentication) && ev.Type == nil {
			t.Errorf("%s: %s without EventTypeCode", action, ev.ID.Text)
		}
		if ev.ID.System != "DCM" {
			t.Errorf("%s: EventID system %q", action, ev.ID.System)
		}
	}
	if ev := eventFor("no-such-action"); ev.ID != evApplicationActivity {
		t.Errorf("unknown action: %v", ev.ID)
	}
}
