package exchange

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportRules enforces the layering of STYLE.md for this package.
func TestImportRules(t *testing.T) {
	// forbidden maps an import path prefix to why this package must not use it.
	forbidden := map[string]string{
		"github.com/pacsnet/pacsnet/node":    "exchange is the wire layer; node plugs in through Authorizer, BlockStore, ManifestHandler",
		"github.com/pacsnet/pacsnet/consent": "exchange asks for authorization through its own Authorizer interface",
		"github.com/pacsnet/pacsnet/dicomio": "exchange moves opaque ciphertext blocks; it never sees DICOM",
		"github.com/pacsnet/pacsnet/cmd":     "exchange must not depend on the CLI",
		"github.com/pacsnet/pacsnet/netsim":  "exchange must not depend on the simulator",
		"github.com/pacsnet/pacsnet/crypto":  "exchange moves sealed bytes it never opens; sealing and signing belong to node",
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
