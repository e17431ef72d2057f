package netsim

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportRules enforces the layering of STYLE.md for this package.
func TestImportRules(t *testing.T) {
	// forbidden maps an import path prefix to why this package must not use it.
	forbidden := map[string]string{
		"github.com/pacsnet/pacsnet/cmd": "netsim builds nodes with node's constructor, not through the CLI",
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
