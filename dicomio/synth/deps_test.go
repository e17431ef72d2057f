package synth

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportRules: synth generates test data; of pacsnet it may use only
// dicomio (and only its tests do), so that any package's tests can use it
// without an import cycle through node or exchange.
func TestImportRules(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	const self = "github.com/pacsnet/pacsnet/"
	for _, imp := range append(pkg.Imports, pkg.TestImports...) {
		if strings.HasPrefix(imp, self) && imp != self+"dicomio" && imp != self+"dicomio/synth" {
			t.Errorf("synth imports %s: only dicomio is allowed", imp)
		}
	}
	for _, imp := range pkg.XTestImports {
		if strings.HasPrefix(imp, self) && imp != self+"dicomio" && imp != self+"dicomio/synth" {
			t.Errorf("synth tests import %s: only dicomio is allowed", imp)
		}
	}
}
