package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/netsim"
)

// netsimCmd runs a simulation in this process: real nodes (node.Open) on
// a libp2p mocknet. It is the one command that does not talk to a served
// node through api.Client, because the nodes it drives are its own
// (internal/deptest allows cmd/pacsnet → netsim for that reason); netsim
// itself drives them through their APIs.
func netsimCmd(g *globals) *cobra.Command {
	var scenario, out, logLevel string
	var cfg netsim.Config
	var lossPct float64
	var maxRSS int64
	c := &cobra.Command{
		Use:   "netsim --scenario NAME [--nodes N] [--seed S] [--out DIR] [--json]",
		Short: "Run many real nodes on a simulated network and report (regional, multisource, fanout, scale, partition, churn)",
		Long: `Run a scenario of many real pacsnet nodes in this process, each on a
libp2p mocknet peer with its archive in memory (on disk where studies are
fetched) and its home in a temporary directory (removed at the end), linked
with latency and bandwidth drawn from the seed:

  regional     hospitals on WAN links (10-80 ms, 100 Mbit/s-1 Gbit/s); some
               import a synthetic CT and grant it to a specialist's hospital,
               which fetches it: time to the first image and to completion
               against the link's ideal time (default 20 hospitals);
               --jitter and --loss impair every link
  multisource  one study held by 1, 2, 4, 8 facilities fetched by another
               (default 8); today the fetcher uses one source, and says so
  fanout       a facility grants a patient to its partners: manifest
               delivery latency p50/p99, memory, goroutines and CPU per node
               (default 30 nodes, min(50, nodes-1) partners)
  scale        fanout at each count of --sweep (default 50,100,200,500,1000),
               each in a process of its own stopped above --max-rss: memory
               and CPU per node as nodes grow, and the largest count that ran
  partition    half of an origin's partners cut off while it grants, revokes,
               grants again, grants a patient and imports; after healing
               every partner must hold what the origin intended, its
               manifests in order, none lost or applied twice (default 8
               nodes, --fetches ops per partner, cut off for --downtime)
  churn        regional with each holder stopped a third of the way into
               its fetch and restarted --downtime later: every fetch must
               complete, verified (default 8 hospitals)

The same seed gives the same topology, links, study sizes and choices;
timings vary. --out writes the report into DIR as JSON, as text, and as
Markdown with its charts (PNG). The --home flag is not used.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(netsim.Scenarios, scenario) {
				return usageError{fmt.Errorf("netsim: --scenario must be one of %s", strings.Join(netsim.Scenarios, ", "))}
			}
			if cfg.Nodes < 0 || cfg.Fetches < 0 || cfg.MinImages < 0 || cfg.MaxImages < 0 || cfg.ImageSize < 0 || cfg.Partners < 0 || cfg.Downtime < 0 || cfg.Jitter < 0 || maxRSS < 0 {
				return usageError{fmt.Errorf("netsim: counts and sizes must not be negative")}
			}
			if lossPct < 0 || lossPct >= 100 {
				return usageError{fmt.Errorf("netsim: --loss is a percentage from 0 to below 100")}
			}
			cfg.Loss = lossPct / 100
			for _, n := range cfg.Sweep {
				if n < 2 {
					return usageError{fmt.Errorf("netsim: --sweep counts must be 2 or more")}
				}
			}
			if scenario == "scale" {
				cfg.RunPoint = fanoutProcess(cfg.Dir, logLevel, maxRSS)
			}
			if logLevel != "" {
				var lvl slog.Level
				if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
					return usageError{fmt.Errorf("--log-level: %w", err)}
				}
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o750); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := netsim.Run(ctx, scenario, cfg)
			if err != nil {
				return fmt.Errorf("netsim %s: %w", scenario, err)
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				return err
			}
			doc, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			doc = append(doc, '\n')
			if out != "" {
				base := filepath.Join(out, fmt.Sprintf("netsim-%s-seed%d", scenario, cfg.Seed))
				if err := os.WriteFile(base+".json", doc, 0o640); err != nil {
					return err
				}
				if err := os.WriteFile(base+".txt", table.Bytes(), 0o640); err != nil {
					return err
				}
				if err := netsim.WriteMarkdown(rep, out, filepath.Base(base)); err != nil {
					return err
				}
			}
			if g.json {
				_, err = os.Stdout.Write(doc)
			} else {
				_, err = os.Stdout.Write(table.Bytes())
			}
			return err
		},
	}
	c.Flags().StringVar(&scenario, "scenario", "", "regional, multisource, fanout, scale, partition or churn (required)")
	c.Flags().IntVar(&cfg.Nodes, "nodes", 0, "hospitals (regional, default 20; churn, default 8), most holders (multisource, default 8), nodes (fanout, default 30; partition, default 8)")
	c.Flags().Uint64Var(&cfg.Seed, "seed", 1, "seed: the same seed gives the same topology, links, sizes and choices")
	c.Flags().StringVar(&out, "out", "", "write the report (JSON), its tables (text) and both as Markdown with PNG charts into this folder")
	c.Flags().StringVar(&cfg.Dir, "dir", "", "where the nodes' temporary homes go (default: the system's temporary folder)")
	c.Flags().IntVar(&cfg.Fetches, "fetches", 0, "regional, churn: studies fetched (default a quarter of the hospitals); partition: ops per partner (default 8)")
	c.Flags().IntVar(&cfg.MinImages, "min-images", 0, "regional, churn: fewest images in a study (default 50)")
	c.Flags().IntVar(&cfg.MaxImages, "max-images", 0, "regional, churn: most images in a study (default 400); multisource: the study's images (default 150)")
	c.Flags().DurationVar(&cfg.Downtime, "downtime", 0, "churn: how long each holder stays down (default 1s); partition: how long partners stay cut off (default 3s)")
	c.Flags().DurationVar(&cfg.RTT, "rtt", 0, "regional: every link's round trip (default: drawn, 10-80 ms)")
	c.Flags().Float64Var(&cfg.Mbps, "mbps", 0, "regional: every link's bandwidth in Mbit/s (default: drawn, 100-1000)")
	c.Flags().DurationVar(&cfg.Jitter, "jitter", 0, "regional: hold each write on a link back by up to this much (uniform; e.g. 5ms)")
	c.Flags().Float64Var(&lossPct, "loss", 0, "regional: percentage of 1,460-byte segments lost on every link; a loss holds its stream back max(200ms, RTT) (e.g. 0.1)")
	c.Flags().IntSliceVar(&cfg.Sweep, "sweep", nil, "scale: node counts, smallest first (default 50,100,200,500,1000)")
	c.Flags().Int64Var(&maxRSS, "max-rss", 16<<30, "scale: stop a point whose process grows past this many bytes resident (a point that cannot fit)")
	c.Flags().IntVar(&cfg.ImageSize, "image-size", 0, "rows and columns of each image (default 256)")
	c.Flags().IntVar(&cfg.Partners, "partners", 0, "fanout: partners granted (default min(50, nodes-1))")
	c.Flags().StringVar(&logLevel, "log-level", "", "print the nodes' logs at this level (debug, info, warn, error) on stderr; default: none")
	required(c, "scenario")
	addJSON(c, g)
	return c
}

// fanoutProcess runs each point of the scale scenario as `pacsnet netsim
// --scenario fanout` in a process of its own: in one process the points'
// figures would not be independent (memory freed by one point is reused,
// and zeroed, by the next, so its resident set grows with it). A point
// whose process grows past maxRSS bytes resident is killed and reported
// as the one that did not fit.
func fanoutProcess(dir, logLevel string, maxRSS int64) func(context.Context, netsim.Config) (*netsim.FanoutReport, error) {
	return func(ctx context.Context, c netsim.Config) (*netsim.FanoutReport, error) {
		// os.Args[0], not os.Executable: under testscript the test binary
		// is pacsnet only by the name it was started with.
		exe := os.Args[0]
		if !strings.Contains(exe, "/") {
			p, err := exec.LookPath(exe)
			if err != nil {
				return nil, fmt.Errorf("scale: find %s: %w", exe, err)
			}
			exe = p
		}
		args := []string{"netsim", "--scenario", "fanout", "--json", "--nodes", strconv.Itoa(c.Nodes), "--seed", strconv.FormatUint(c.Seed, 10)}
		if dir != "" {
			args = append(args, "--dir", dir)
		}
		if c.Partners > 0 {
			args = append(args, "--partners", strconv.Itoa(c.Partners))
		}
		if logLevel != "" {
			args = append(args, "--log-level", logLevel)
		}
		cmd := exec.CommandContext(ctx, exe, args...)
		var stdout bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("scale: start a fanout of %d nodes: %w", c.Nodes, err)
		}
		var killed atomic.Int64
		done := make(chan struct{})
		go func() { // the watchdog, ended before cmd.Wait returns
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				if r := processRSS(cmd.Process.Pid); maxRSS > 0 && r > maxRSS {
					killed.Store(r)
					cmd.Process.Kill()
					return
				}
			}
		}()
		err := cmd.Wait()
		close(done)
		if r := killed.Load(); r > 0 {
			return nil, fmt.Errorf("%d nodes: stopped at %d MiB resident (--max-rss %d MiB)", c.Nodes, r>>20, maxRSS>>20)
		}
		if err != nil {
			return nil, fmt.Errorf("%d nodes: %w", c.Nodes, err)
		}
		var rep netsim.FanoutReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			return nil, fmt.Errorf("%d nodes: read the report: %w", c.Nodes, err)
		}
		return &rep, nil
	}
}

// processRSS is the resident set of process pid in bytes (Linux; 0
// elsewhere or once it has ended).
func processRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
