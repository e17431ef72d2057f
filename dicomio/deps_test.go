package dicomio

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportRules enforces the layering of STYLE.md for this package.
func TestImportRules(t *testing.T) {
	// forbidden maps an import path prefix to why this package must not use it.
	forbidden := map[string]string{
		"github.com/pacsnet/pacsnet/node":     "dicomio is functions over bytes and readers; it knows nothing of the node",
		"github.com/pacsnet/pacsnet/exchange": "dicomio parses DICOM; the network is not its business",
		"github.com/pacsnet/pacsnet/consent":  "dicomio parses DICOM; access decisions are not its business",
		"github.com/pacsnet/pacsnet/crypto":   "dicomio parses plaintext; encryption happens in node",
		"github.com/pacsnet/pacsnet/cmd":      "dicomio must not depend on the CLI",
		"github.com/pacsnet/pacsnet/netsim":   "dicomio must not depend on the simulator",
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
