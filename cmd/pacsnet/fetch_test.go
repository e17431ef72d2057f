package main

import (
	"testing"

	"github.com/pacsnet/pacsnet/api"
)

// A fetch names its holder alone until a second one delivered; then each
// holder that delivered, with its part, its name made printable.
func TestHoldersText(t *testing.T) {
	stMary := api.PartnerRef{Name: "St Mary", PeerID: "12D3KooWStMary"}
	riverside := api.PartnerRef{Name: "River\x1bside", PeerID: "12D3KooWRiverside"}
	for _, c := range []struct {
		sources []api.FetchSource
		want    string
	}{
		{nil, "St Mary"},
		{[]api.FetchSource{{Holder: stMary, Bytes: 5e6}, {Holder: riverside}}, "St Mary"},
		{[]api.FetchSource{{Holder: stMary, Bytes: 16_300_000}, {Holder: riverside, Bytes: 88_900_000}}, `St Mary 16.3 MB + River\x1bside 88.9 MB`},
	} {
		if got := holdersText(api.FetchJob{Holder: stMary, Sources: c.sources}); got != c.want {
			t.Errorf("%+v: %q, want %q", c.sources, got, c.want)
		}
	}
}
