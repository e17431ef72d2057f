package node

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// Granting a study again to a partner that already holds a live grant for
// it succeeds with a notice: revoking one grant would not end its access.
func TestGrantOverlapNotice(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 1)
	notice := func() string {
		body := []byte(`{"to":"Beta","study_uid":"` + study + `"}`)
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/grants", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+a.keys.apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("grant: %s", resp.Status)
		}
		return resp.Header.Get("X-Pacsnet-Notice")
	}
	if n := notice(); n != "" {
		t.Errorf("first grant carries a notice: %q", n)
	}
	if n := notice(); !strings.Contains(n, "1 other live grant") {
		t.Errorf("second grant: notice %q, want one naming the other live grant", n)
	}
}
