package node

import (
	"testing"

	"github.com/pacsnet/pacsnet/api"
)

// The server serves exactly the routes of the api package: every route
// has its handler, and no handler serves a route the contract lacks.
func TestEveryAPIRouteHasOneHandler(t *testing.T) {
	hs := (&apiServer{}).routes()
	seen := map[string]bool{}
	for _, rt := range api.Routes {
		if seen[rt.Name] {
			t.Errorf("route name %s twice in api.Routes", rt.Name)
		}
		seen[rt.Name] = true
		if hs[rt.Name] == nil {
			t.Errorf("no handler for %s (%s)", rt.Name, rt.Pattern())
		}
	}
	for name := range hs {
		if !seen[name] {
			t.Errorf("handler %s serves no route of api.Routes", name)
		}
	}
}
