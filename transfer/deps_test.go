package transfer

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden lists what transfer must not depend on, even indirectly, and
// why. (internal/deptest checks the whole module's layering; this keeps
// the rule beside the package until the table there has a row for it.)
var forbidden = []struct{ prefix, why string }{
	{"github.com/pacsnet/pacsnet/", "transfer is the engine alone: the node plugs sources and a sink into it, " +
		"so it needs none of node, exchange, consent, crypto or dicomio"},
	{"github.com/libp2p/", "sources hide the network: the engine runs the same over libp2p streams, " +
		"a simulator or memory"},
	{"github.com/dgraph-io/badger", "the sink hides the store"},
	{"log/slog", "the engine reports through Progress and Result; the caller logs"},
}

func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/pacsnet/pacsnet/transfer" {
			continue
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f.prefix) {
				t.Errorf("transfer depends on %s: %s", dep, f.why)
			}
		}
	}
}
