package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

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
	c := &cobra.Command{
		Use:   "netsim --scenario NAME [--nodes N] [--seed S] [--out DIR] [--json]",
		Short: "Run many real nodes on a simulated network and report (regional, multisource, fanout, churn)",
		Long: `Run a scenario of many real pacsnet nodes in this process, each on a
libp2p mocknet peer with its archive in memory and its home in a temporary
directory (removed at the end), linked with latency and bandwidth drawn from
the seed:

  regional     hospitals on WAN links (10-80 ms, 100 Mbit/s-1 Gbit/s); some
               import a synthetic CT and grant it to a specialist's hospital,
               which fetches it: time to the first image and to completion
               against the link's ideal time (default 20 hospitals)
  multisource  one study held by 1, 2, 4, 8 facilities fetched by another
               (default 8); today the fetcher uses one source, and says so
  fanout       a facility grants a patient to its partners: manifest
               delivery latency p50/p99, heap and goroutines per node
               (default 30 nodes, min(50, nodes-1) partners)
  churn        regional with each holder stopped a third of the way into
               its fetch and restarted --downtime later: every fetch must
               complete, verified (default 8 hospitals)

The same seed gives the same topology, links, study sizes and choices;
timings vary. --out writes the report as JSON and the table as text into
DIR. The --home flag is not used.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(netsim.Scenarios, scenario) {
				return usageError{fmt.Errorf("netsim: --scenario must be one of %s", strings.Join(netsim.Scenarios, ", "))}
			}
			if cfg.Nodes < 0 || cfg.Fetches < 0 || cfg.MinImages < 0 || cfg.MaxImages < 0 || cfg.ImageSize < 0 || cfg.Partners < 0 || cfg.Downtime < 0 {
				return usageError{fmt.Errorf("netsim: counts and sizes must not be negative")}
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
			}
			if g.json {
				_, err = os.Stdout.Write(doc)
			} else {
				_, err = os.Stdout.Write(table.Bytes())
			}
			return err
		},
	}
	c.Flags().StringVar(&scenario, "scenario", "", "regional, multisource, fanout or churn (required)")
	c.Flags().IntVar(&cfg.Nodes, "nodes", 0, "hospitals (regional, default 20; churn, default 8), most holders (multisource, default 8), nodes (fanout, default 30)")
	c.Flags().Uint64Var(&cfg.Seed, "seed", 1, "seed: the same seed gives the same topology, links, sizes and choices")
	c.Flags().StringVar(&out, "out", "", "write the report (JSON) and its table (text) into this folder")
	c.Flags().StringVar(&cfg.Dir, "dir", "", "where the nodes' temporary homes go (default: the system's temporary folder)")
	c.Flags().IntVar(&cfg.Fetches, "fetches", 0, "regional, churn: studies fetched (default a quarter of the hospitals)")
	c.Flags().IntVar(&cfg.MinImages, "min-images", 0, "regional, churn: fewest images in a study (default 50)")
	c.Flags().IntVar(&cfg.MaxImages, "max-images", 0, "regional, churn: most images in a study (default 400); multisource: the study's images (default 150)")
	c.Flags().DurationVar(&cfg.Downtime, "downtime", 0, "churn: how long each holder stays down (default 1s)")
	c.Flags().IntVar(&cfg.ImageSize, "image-size", 0, "rows and columns of each image (default 256)")
	c.Flags().IntVar(&cfg.Partners, "partners", 0, "fanout: partners granted (default min(50, nodes-1))")
	c.Flags().StringVar(&logLevel, "log-level", "", "print the nodes' logs at this level (debug, info, warn, error) on stderr; default: none")
	required(c, "scenario")
	addJSON(c, g)
	return c
}
