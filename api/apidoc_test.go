package api_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/pacsnet/pacsnet/api/internal/apidoc"
)

var update = flag.Bool("update", false, "rewrite docs/api.md from the code")

const docPath = "../docs/api.md"

// TestDocsUpToDate fails when docs/api.md is not what the route table and
// the types generate, so the documentation cannot drift from the code.
func TestDocsUpToDate(t *testing.T) {
	want, err := apidoc.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(docPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("%v: run `go generate ./api`", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("docs/api.md differs from the code at line %d:\n  file: %q\n  code: %q\nrun `go generate ./api` (or go test ./api -run TestDocsUpToDate -update)", i+1, g, w)
			}
		}
	}
}
