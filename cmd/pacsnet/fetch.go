package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
)

func fetchCmd(g *globals) *cobra.Command {
	var study, from, progress string
	var noProgress bool
	c := &cobra.Command{
		Use:   "fetch --study UID [--from PEER]",
		Short: "Fetch a study a partner shared, with progress; resumes where it stopped",
		Long: `Fetch a study a partner facility shared with this one. Blocks are
verified as they arrive against their content addresses, which the
partner's signed manifest lists; every instance is checked against its
SHA-256 whenever it is read or exported, and never served unless it
matches. Blocks already held
are not fetched again: running fetch again resumes. Without a manifest for
the study, --from names the facility to ask for one (it answers only under a
grant).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			draw, err := drawProgress(progress, noProgress || g.json)
			if err != nil {
				return err
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			if study, err = resolveStudy(c.Context(), cl, sharedStudies, study); err != nil {
				return err
			}
			st, err := cl.StartFetch(c.Context(), api.FetchRequest{StudyUID: study, From: from})
			if err != nil {
				return err
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			var bar *progressbar.ProgressBar
			if draw && st.BytesResumed < st.Bytes {
				bar = progressbar.NewOptions64(st.Bytes,
					progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionShowElapsedTimeOnFinish(),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionFullWidth(),
				)
			}
			lastAttempt := 0
			for {
				waiting := ""
				if st.State == api.FetchWaiting {
					waiting = waitingText(st, time.Now())
				}
				if bar != nil {
					desc := fmt.Sprintf("%s: %d/%d instances stored", holdersText(st), st.InstancesDone, st.Instances)
					if waiting != "" {
						desc += " — " + waiting
					}
					bar.Describe(desc)
					bar.Set64(st.BytesDone)
				} else if waiting != "" && st.Attempts != lastAttempt && !g.json {
					// No bar (not a terminal): one line per attempt.
					fmt.Fprintln(os.Stderr, "pacsnet: "+waiting)
				}
				lastAttempt = st.Attempts
				if st.State == api.FetchDone || st.State == api.FetchFailed {
					break
				}
				select {
				case sig := <-sigs:
					if bar != nil {
						fmt.Fprintln(os.Stderr)
					}
					return interruptedError{sig.(syscall.Signal), "stopped following the fetch; the node goes on fetching: run the same `pacsnet fetch` to follow it again"}
				case <-time.After(150 * time.Millisecond):
				}
				if st, err = cl.Fetch(c.Context(), st.FetchID); err != nil {
					return err
				}
			}
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			secs := st.Finished.Sub(st.Started).Seconds()
			fetched := st.BytesDone - st.BytesResumed
			if g.json {
				if err := printJSON(api.FetchReport{Fetch: st, Seconds: secs, BytesFetched: fetched}); err != nil {
					return err
				}
			}
			if st.State == api.FetchFailed {
				return fmt.Errorf("fetch failed: %s", st.Error)
			}
			if !g.json && fetched == 0 {
				fmt.Printf("already complete: all %d instances from %s are held here\n", st.Instances, partnerName(st.Holder))
			} else if !g.json {
				// The rate is over the time spent transferring: a holder that
				// was down for a while is not a slow link.
				moving := secs - st.WaitedSeconds
				rate := 0.0
				if moving > 0 {
					rate = float64(fetched) / 1e6 / moving
				}
				waited := ""
				if st.WaitedSeconds >= 0.5 {
					waited = fmt.Sprintf(" (%.1fs of it waiting for an unreachable holder)", st.WaitedSeconds)
				}
				fmt.Printf("fetched %d instances (%.1f MB, %.1f MB resumed from earlier) from %s in %.2fs%s: %.1f MB/s\n",
					st.Instances, float64(fetched)/1e6, float64(st.BytesResumed)/1e6, holdersText(st), secs, waited, rate)
			}
			return nil
		},
	}
	c.Flags().StringVar(&study, "study", "", studyFlagHelp)
	c.Flags().StringVar(&from, "from", "", "partner facility (peer ID or name) to fetch from")
	c.Flags().StringVar(&progress, "progress", "auto", "progress bar: auto (when stderr is a terminal), always or never")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "same as --progress never")
	required(c, "study")
	addJSON(c, g)
	return c
}

// holdersText names who a fetch's blocks come from: the holder alone,
// or, once secondary holders delivered too, each with its part
// ("St Mary 16.3 MB + Riverside 88.9 MB").
func holdersText(st api.FetchJob) string {
	var parts []string
	for _, src := range st.Sources {
		if src.Bytes > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f MB", partnerName(src.Holder), float64(src.Bytes)/1e6))
		}
	}
	if len(parts) < 2 {
		return partnerName(st.Holder)
	}
	return strings.Join(parts, " + ")
}

// drawProgress decides whether fetch draws its bar: on a terminal by
// default, never into a log file unless asked.
func drawProgress(mode string, off bool) (bool, error) {
	switch mode {
	case "always":
		return !off, nil
	case "never":
		return false, nil
	case "auto":
		fi, err := os.Stderr.Stat()
		return !off && err == nil && fi.Mode()&os.ModeCharDevice != 0, nil
	}
	return false, usageError{fmt.Errorf("--progress %q: want auto, always or never", printable(mode))}
}

func exportCmd(g *globals) *cobra.Command {
	var study, out string
	var partial, merge bool
	c := &cobra.Command{
		Use:   "export --study UID --out DIR",
		Short: "Write a study's instances as DICOM Part-10 files, each verified by SHA-256",
		Long: `Write every instance of a study held here (imported or fetched) to
DIR/<Series Instance UID>/<SOP Instance UID>.dcm (mode 0640, folders
0750: these are patient data). The node writes the files itself, as the
user it runs as: DIR is a folder on the node's machine. Each file's SHA-256 is checked against the
archive's record after it is written and synced; the export and its
outcome are audited. File names carry UIDs only, never patient data. A
partly fetched study is refused unless --allow-partial is given.

Files are always created new: never through a symbolic link, never over
an existing file, only in folders of the node's user that are not links.
An existing DIR that is not empty is refused unless --merge is given;
merging keeps files that are already there and identical, and refuses
any that differ. DIR/INCOMPLETE is written first and removed only when
every instance of the whole study is written and synced: after a failed
or cancelled export, and after --allow-partial, it stays and says how
many of how many instances the folder holds.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			// The node writes the files: DIR is a folder on its machine,
			// which for the CLI is this one.
			abs, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			if study, err = resolveStudy(c.Context(), cl, localStudies, study); err != nil {
				return err
			}
			start := time.Now()
			res, err := cl.Export(c.Context(), study, api.ExportRequest{Out: abs, AllowPartial: partial, Merge: merge})
			if err != nil {
				return err
			}
			if res.Verified != len(res.Files) {
				return fmt.Errorf("export: the node verified %d of the %d files it wrote", res.Verified, len(res.Files))
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("exported %d instances (%.1f MB) to %s in %.2fs; every SHA-256 verified\n", len(res.Files), float64(res.Bytes)/1e6, printable(out), time.Since(start).Seconds())
			if res.Skipped > 0 {
				fmt.Printf("%d of them were there already, identical, and were kept\n", res.Skipped)
			}
			if res.Incomplete != "" {
				fmt.Fprintf(os.Stderr, "pacsnet: warning: the study is held here only in part; %s marks the folder as incomplete\n", printable(res.Incomplete))
			}
			return nil
		},
	}
	c.Flags().StringVar(&study, "study", "", studyFlagHelp)
	c.Flags().StringVar(&out, "out", "", "output folder (required)")
	c.Flags().BoolVar(&partial, "allow-partial", false, "export a partly fetched study as far as it is held")
	c.Flags().BoolVar(&merge, "merge", false, "add to a folder that is not empty (identical files are kept, different ones refused)")
	required(c, "study", "out")
	addJSON(c, g)
	return c
}

// waitingText says what a fetch waiting for its holder is doing: why,
// which attempt, when the next one is, when it gives up.
func waitingText(st api.FetchJob, now time.Time) string {
	next := st.NextAttempt.Sub(now).Round(time.Second)
	give := st.GiveUpAt.Sub(now).Round(time.Second)
	return fmt.Sprintf("waiting: %s; attempt %d, next try in %s, giving up in %s (exchange.fetch_retry_for)",
		printable(st.Error), st.Attempts, max(next, 0), max(give, 0))
}
