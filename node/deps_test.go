package node

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportRules enforces the layering of STYLE.md for this package.
func TestImportRules(t *testing.T) {
	// forbidden maps an import path prefix to why this package must not use it.
	forbidden := map[string]string{
		"github.com/pacsnet/pacsnet/cmd":    "node is driven by the CLI, never the other way round",
		"github.com/pacsnet/pacsnet/netsim": "netsim builds nodes; node must not know it is simulated",
	}
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		for prefix, why := range forbidden {
			if imp == prefix || strings.HasPrefix(imp, prefix+"/") {
				t.Errorf("imports %s: %s", imp, why)
			}
		}
	}
}
