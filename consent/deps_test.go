package consent

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedOurs is the only pacsnet package consent may import.
const allowedOurs = "github.com/pacsnet/pacsnet/crypto"

// forbidden lists imports consent must not have, and why. Prefixes ending
// in "/" match a whole subtree.
var forbidden = map[string]string{
	"github.com/pacsnet/pacsnet/":      "consent imports only pacsnet/crypto: it is pure logic under node",
	"net":                              "consent does no networking: exchange asks it through an interface",
	"net/":                             "consent does no networking",
	"os":                               "storage comes in through Store; no files",
	"log":                              "no global logger; the node decides what to log",
	"log/slog":                         "consent returns decisions and audit entries; the node logs",
	"github.com/dgraph-io/":            "the node plugs Badger in behind Store",
	"github.com/libp2p/go-libp2p/p2p/": "only core/peer and core/crypto types; no hosts or transports",
	"math/rand":                        "grant IDs need crypto/rand",
}

func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == allowedOurs {
				continue
			}
			for bad, why := range forbidden {
				if path == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(path, bad)) {
					t.Errorf("%s imports %s: %s", f, path, why)
				}
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
