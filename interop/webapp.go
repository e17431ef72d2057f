package interop

import (
	"encoding/json"
	"testing"
	"time"
)

// WebAppCheck is one line the web app's browser script reports: a named
// check and its detail (for a probe, the JSON the Go side verifies).
type WebAppCheck struct {
	Name, Detail string
	OK           bool
}

// RunWebApp drives the node's web app in Debian's headless Chromium
// through interop/js/webapp-check.mjs (playwright-core), with env naming
// the nodes, users and studies the scenario needs (see the script's
// header). It fails t with the detail of every failed check and returns
// all of them.
func RunWebApp(t testing.TB, timeout time.Duration, env []string) []WebAppCheck {
	t.Helper()
	RequireTools(t, true)
	var out []WebAppCheck
	for _, c := range runScript(t, timeout, "webapp-check.mjs", append([]string{"CHROMIUM=" + ChromiumPath}, env...)) {
		out = append(out, WebAppCheck{Name: c.Name, Detail: c.Detail, OK: c.OK})
	}
	return out
}

// ProbeReport is the detail of the script's probe check: where the
// viewer's pixel readout was taken and what it said.
type ProbeReport struct {
	SOPInstanceUID string  `json:"sop_instance_uid"`
	Col            int     `json:"col"`
	Row            int     `json:"row"`
	Value          float64 `json:"value"`
}

// ParseProbe decodes a probe check's detail.
func ParseProbe(detail string) (ProbeReport, error) {
	var p ProbeReport
	err := json.Unmarshal([]byte(detail), &p)
	return p, err
}
