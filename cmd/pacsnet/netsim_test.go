package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `pacsnet netsim` runs a small fanout in-process and writes its report,
// as JSON and as a table, into --out; a scenario it does not know is a
// usage error.
func TestNetsimCommand(t *testing.T) {
	out := t.TempDir()
	if code := run([]string{"netsim", "--scenario", "fanout", "--nodes", "4", "--seed", "3", "--dir", t.TempDir(), "--out", out}); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	doc, err := os.ReadFile(filepath.Join(out, "netsim-fanout-seed3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Scenario  string `json:"scenario"`
		Seed      uint64 `json:"seed"`
		Nodes     int    `json:"nodes"`
		Granted   int    `json:"granted"`
		Delivered int    `json:"delivered"`
	}
	if err := json.Unmarshal(doc, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Scenario != "fanout" || rep.Seed != 3 || rep.Nodes != 4 || rep.Granted != 3 || rep.Delivered != 3 {
		t.Errorf("report: %+v", rep)
	}
	table, err := os.ReadFile(filepath.Join(out, "netsim-fanout-seed3.txt"))
	if err != nil || !strings.Contains(string(table), "p99") {
		t.Errorf("table (%v):\n%s", err, table)
	}
	md, err := os.ReadFile(filepath.Join(out, "netsim-fanout-seed3.md"))
	if err != nil || !strings.Contains(string(md), "| delivered |") || !strings.Contains(string(md), "(netsim-fanout-seed3-latency-cdf.png)") {
		t.Errorf("markdown (%v):\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(out, "netsim-fanout-seed3-latency-cdf.png")); err != nil {
		t.Error(err)
	}

	if code := run([]string{"netsim", "--scenario", "gossip"}); code != exitUsage {
		t.Errorf("unknown scenario: exit status %d, want %d", code, exitUsage)
	}
	if code := run([]string{"netsim"}); code != exitUsage {
		t.Errorf("no scenario: exit status %d, want %d", code, exitUsage)
	}
}
