package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/node"
)

// newClient returns a client of the node serving home: its API's URL is
// in HOME/run/api.json, its token in HOME/keys/api.token, or a user's API
// or session token in $PACSNET_TOKEN (which then acts in that user's role).
func newClient(home string) (*api.Client, error) {
	ri, err := node.ReadRunInfo(home)
	if err != nil {
		return nil, err
	}
	if tok := os.Getenv("PACSNET_TOKEN"); tok != "" {
		return api.NewClient(ri.API, tok, &http.Client{Timeout: 10 * time.Minute}), nil
	}
	tok, err := node.ReadAPIToken(home)
	if err != nil {
		return nil, err
	}
	return api.NewClient(ri.API, tok, &http.Client{Timeout: 10 * time.Minute}), nil
}

// unreachable says what to check when a request got no answer at all (the
// client reports those as *url.Error); other errors pass unchanged.
func unreachable(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("node API unreachable (is `pacsnet serve` running?): %w", err)
	}
	return err
}

// printJSON prints v, an api type, as the one JSON document of --json.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// partnerName is how listings show a partner: its name, or the end of its
// peer ID when the node knows no name for it (no longer a partner).
func partnerName(p api.PartnerRef) string {
	if p.Name != "" {
		return printable(p.Name)
	}
	if len(p.PeerID) > 12 {
		return "…" + p.PeerID[len(p.PeerID)-8:]
	}
	return p.PeerID
}
