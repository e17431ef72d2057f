// Command gendoc writes docs/api.md from package api:
//
//	go generate ./api
//
// runs it as `go run ./internal/gendoc -src . -o ../docs/api.md`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/pacsnet/pacsnet/api/internal/apidoc"
)

func main() {
	src := flag.String("src", "api", "the api package's source folder")
	out := flag.String("o", "", "write here instead of stdout")
	flag.Parse()
	b, err := apidoc.Generate(*src)
	if err == nil && *out != "" {
		err = os.WriteFile(*out, b, 0o644)
	} else if err == nil {
		_, err = os.Stdout.Write(b)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
