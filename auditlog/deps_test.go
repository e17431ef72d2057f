package auditlog

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps auditlog a leaf that formats and ships entries: it
// may import the standard library, consent (for consent.Entry) and
// internal/durable (the cursor's synced writes), and nothing else of ours
// or of the network stack.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	forbidden := map[string]string{
		"github.com/pacsnet/pacsnet/node":     "the node uses auditlog, not the reverse",
		"github.com/pacsnet/pacsnet/api":      "api types belong to the HTTP API; the event test reads them from source",
		"github.com/pacsnet/pacsnet/exchange": "the exchange protocol is none of the audit export's business",
		"github.com/dgraph-io/badger/v4":      "entries come through Reader, never from storage directly",
		"github.com/libp2p/go-libp2p":         "peer IDs are written as strings; no network stack here",
	}
	for _, imp := range pkg.Imports {
		for bad, why := range forbidden {
			if imp == bad || strings.HasPrefix(imp, bad+"/") {
				t.Errorf("imports %s: %s", imp, why)
			}
		}
		if strings.Contains(imp, ".") && imp != "github.com/pacsnet/pacsnet/consent" && imp != "github.com/pacsnet/pacsnet/internal/durable" {
			t.Errorf("imports %s: only the standard library, consent and internal/durable are allowed", imp)
		}
	}
}
