package netsim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Config is what a scenario run is given. Zero fields take the
// scenario's defaults.
type Config struct {
	// Dir is where the nodes' homes go (a fresh directory under it per
	// run, removed at the end); empty: the system's temporary directory.
	Dir string
	// Seed fixes the topology, the links, the studies' sizes and every
	// choice; the same seed gives the same plan (timings vary).
	Seed uint64
	// Nodes is the scenario's size: hospitals (regional, churn), the
	// most holders (multisource), or all nodes (fanout).
	Nodes int
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger

	// Fetches is how many studies regional and churn fetch (default: a
	// quarter of the hospitals, at least 1).
	Fetches int
	// MinImages and MaxImages bound a regional study's size (default
	// 50 to 400 images, so that a run takes seconds; realistic studies
	// go to 2,000). multisource's study has MaxImages (default 150).
	MinImages, MaxImages int
	// ImageSize is the rows and columns of every image (default 256: a
	// 128 KiB slice; a real CT has 512).
	ImageSize int

	// Partners is how many partners fanout grants to (default
	// min(50, Nodes-1)).
	Partners int

	// Downtime is how long churn keeps each holder down (default 1s),
	// and how long partition keeps its partners cut off (default 3s).
	Downtime time.Duration

	// RTT and Mbps, when set, are every regional link's round trip and
	// bandwidth instead of drawn ones (the rest of the plan is the
	// seed's all the same).
	RTT  time.Duration
	Mbps float64

	// Jitter and Loss impair every link of regional (see LinkSpec).
	Jitter time.Duration
	Loss   float64

	// Sweep is the node counts scale runs fanout at (default
	// DefaultSweep); RunPoint runs one (default: Fanout in this process).
	Sweep    []int                                                        `json:"-"`
	RunPoint func(ctx context.Context, cfg Config) (*FanoutReport, error) `json:"-"`
}

// Report is what a scenario returns: a value that marshals to JSON and
// prints as a table.
type Report interface {
	WriteTable(w io.Writer) error
}

// Scenarios are the scenarios Run knows, by name.
var Scenarios = []string{"regional", "multisource", "fanout", "scale", "partition", "churn"}

// Run runs the scenario called name.
func Run(ctx context.Context, name string, cfg Config) (Report, error) {
	var rep Report
	var err error
	switch name {
	case "regional":
		rep, err = nilIfErr(Regional(ctx, cfg))
	case "multisource":
		rep, err = nilIfErr(Multisource(ctx, cfg))
	case "fanout":
		rep, err = nilIfErr(Fanout(ctx, cfg))
	case "scale":
		rep, err = nilIfErr(Scale(ctx, cfg))
	case "partition":
		rep, err = nilIfErr(Partition(ctx, cfg))
	case "churn":
		rep, err = nilIfErr(Churn(ctx, cfg))
	default:
		err = fmt.Errorf("no scenario %q (known: %v)", name, Scenarios)
	}
	return rep, err
}

// nilIfErr keeps a typed nil report out of the Report interface.
func nilIfErr[R Report](r R, err error) (Report, error) {
	if err != nil {
		return nil, err
	}
	return r, nil
}

// rng is a scenario's source of every choice: PCG seeded from the seed
// and the scenario's name, so that scenarios with one seed do not mirror
// each other.
func rng(seed uint64, scenario string) *rand.Rand {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(scenario) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h))
}

// wanLink draws a WAN link: a round trip of 10–80 ms (whole
// milliseconds) and 100 Mbit/s–1 Gbit/s (log-uniform, in steps of
// 10 Mbit/s).
func wanLink(r *rand.Rand) LinkSpec {
	rtt := time.Duration(10+r.IntN(71)) * time.Millisecond
	// log-uniform between 100 and 1000 Mbit/s
	mbps := 100 * math.Pow(10, r.Float64())
	mbps = float64(int(mbps/10+0.5) * 10)
	return LinkSpec{RTT: rtt, Bandwidth: int64(mbps * 1e6 / 8)}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// percentile is the p-th percentile (0–100) of ds by the nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// table is a report's table: aligned text, or a Markdown table when
// written to WriteMarkdown's writer.
type table struct {
	w    io.Writer
	md   bool
	rows [][]string
}

func newTable(w io.Writer, cols ...string) *table {
	_, md := w.(markdown)
	return &table{w: w, md: md, rows: [][]string{cols}}
}

func row(t *table, cells ...any) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, r)
}

// Flush writes the table.
func (t *table) Flush() error {
	if t.md {
		var b strings.Builder
		b.WriteString("\n")
		for i, r := range t.rows {
			b.WriteString("| " + strings.Join(r, " | ") + " |\n")
			if i == 0 {
				b.WriteString("|" + strings.Repeat("---:|", len(r)) + "\n")
			}
		}
		b.WriteString("\n")
		_, err := io.WriteString(t.w, b.String())
		return err
	}
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range t.rows {
		fmt.Fprint(tw, strings.Join(r, "\t")+"\t\n")
	}
	return tw.Flush()
}
