package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// What a grantee sees at the CLI (issue 6, items 1, 2, 3 and 4): a shorter
// second grant does not hide a longer live one; instances added to a
// granted study reach it as a new manifest version; its own import into
// the fetched copy is refused with a reason; `peer remove` at the holder
// tells it first, so its `shared` says revoked.
func TestGranteeSeesGrantsAndGrowth(t *testing.T) {
	stMary, riverside := partnered(t, newCluster(t))
	dir := t.TempDir()
	var syn api.SynthResult
	mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(dir, "ct"), "--slices", "6", "--size", "32")
	paths, _ := filepath.Glob(filepath.Join(dir, "ct", "*.dcm"))
	first, later := filepath.Join(dir, "first"), filepath.Join(dir, "later")
	for i, p := range paths {
		to := first
		if i >= 3 {
			to = later
		}
		os.MkdirAll(to, 0o755)
		if err := os.Rename(p, filepath.Join(to, filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, stMary, "import", first)

	var long, short api.Grant
	mustJSON(t, stMary, &long, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "24h")
	mustJSON(t, stMary, &short, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "2s")
	shared := func() api.SharedStudy { return sharedStudy(t, riverside, syn.StudyUID) }
	waitFor(t, "both grants at Riverside", 20*time.Second, func() bool { return shared().Version >= 2 })
	time.Sleep(2500 * time.Millisecond) // the short grant expires
	if s := shared(); s.State != api.SharedAvailable || s.GrantID != long.GrantID {
		t.Fatalf("after the 2s grant expired: %s under %s; want available under the 24h grant", s.State, s.GrantID)
	}
	mustRun(t, riverside, "fetch", "--study", syn.StudyUID, "--no-progress")

	// St Mary adds three instances: Riverside sees 6, not fetched, and gets them.
	mustRun(t, stMary, "import", later)
	waitFor(t, "the new manifest version at Riverside", 20*time.Second, func() bool { return shared().Instances == 6 })
	if s := shared(); s.Fetched {
		t.Fatal("listed as fetched with 3 instances missing")
	}
	mustRun(t, riverside, "fetch", "--study", syn.StudyUID, "--no-progress")
	if s := shared(); !s.Fetched {
		t.Fatal("not fetched after fetching the rest")
	}

	// Riverside's own import of a 7th slice into St Mary's study is
	// refused, saying why (the same seed makes the same study).
	mustRun(t, riverside, "synth", "--out", filepath.Join(dir, "seven"), "--slices", "7", "--size", "32")
	out, err := riverside.Run("import", "--json", filepath.Join(dir, "seven", "CT000007.dcm"))
	if exitCode(err) != 1 || !strings.Contains(string(out), "partner-copy") || !strings.Contains(string(out), "copy fetched from St Mary") {
		t.Fatalf("import into a partner's copy: %v\n%s", err, out)
	}

	// St Mary ends the partnership: Riverside is told before the cut.
	var rm api.PartnerRemoved
	mustJSON(t, stMary, &rm, "peer", "remove", "Riverside")
	if rm.RevokedGrants != 1 || rm.Undelivered != 0 || rm.Delivered < 1 {
		t.Fatalf("peer remove: %+v", rm)
	}
	if s := shared(); s.State != api.SharedRevoked {
		t.Fatalf("Riverside's shared says %s after St Mary removed it, want revoked", s.State)
	}
}
