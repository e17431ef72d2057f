package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// A grantee killed (SIGKILL) mid-fetch opens its archive again and, asked
// to fetch once more, resumes from what it had committed: only instances
// verified before the crash are listed in between, the blocks committed
// are not fetched again, and every instance ends verified and exportable.
// (The blob log's tail written after the last commit is left unread.)
func TestFetchResumesAfterGranteeCrash(t *testing.T) {
	c := newCluster(t)
	stMary, riverside := partnered(t, c)
	dir := t.TempDir()
	var syn api.SynthResult
	mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(dir, "ct"), "--slices", "30", "--size", "256")
	mustRun(t, stMary, "import", filepath.Join(dir, "ct"))
	// A slow uplink, so that the crash surely comes mid-way.
	stMary.Stop()
	stMary.Extra = []string{"--upload-rate", "500000"}
	if err := stMary.Start(); err != nil {
		t.Fatal(err)
	}
	mustRun(t, stMary, "grant", "--to", "Riverside", "--study", syn.StudyUID)
	waitFor(t, "the manifest at Riverside", 30*time.Second, func() bool { return sharedState(t, riverside, syn.StudyUID) == api.SharedAvailable })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go riverside.RunContext(ctx, nil, "fetch", "--study", syn.StudyUID, "--no-progress")
	var before int
	waitFor(t, "the first verified instances", 60*time.Second, func() bool {
		var ss []api.Study
		mustJSON(t, riverside, &ss, "studies")
		if len(ss) == 1 {
			before = ss[0].Instances
		}
		return before >= 3
	})
	riverside.Kill()
	cancel()
	if err := riverside.Start(); err != nil {
		t.Fatalf("Riverside does not start again after the crash: %v", err)
	}
	var ss []api.Study
	mustJSON(t, riverside, &ss, "studies")
	if len(ss) != 1 || ss[0].Instances < before || ss[0].Instances >= 30 {
		t.Fatalf("after the crash Riverside lists %+v; want the %d+ instances verified before it, fewer than 30", ss, before)
	}
	stMary.Stop()
	stMary.Extra = nil
	if err := stMary.Start(); err != nil {
		t.Fatal(err)
	}
	var fo api.FetchReport
	mustJSON(t, riverside, &fo, "fetch", "--study", syn.StudyUID)
	if fo.Fetch.State != api.FetchDone || fo.Fetch.InstancesDone != 30 {
		t.Fatalf("the fetch after the crash ended %+v", fo.Fetch)
	}
	if fo.Fetch.BytesResumed == 0 || fo.BytesFetched+fo.Fetch.BytesResumed != fo.Fetch.Bytes {
		t.Errorf("resumed %d and fetched %d bytes of %d: want the committed blocks resumed, the rest fetched once", fo.Fetch.BytesResumed, fo.BytesFetched, fo.Fetch.Bytes)
	}
	var exp api.ExportResult
	mustJSON(t, riverside, &exp, "export", "--study", syn.StudyUID, "--out", filepath.Join(dir, "export"))
	if len(exp.Files) != 30 {
		t.Fatalf("exported %d files, want 30", len(exp.Files))
	}
}
