package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/node"
)

func fetchCmd(g *globals) *cobra.Command {
	var study, from, progress string
	var noProgress bool
	c := &cobra.Command{
		Use:   "fetch --study UID [--from PEER]",
		Short: "Fetch a study a partner shared, with progress; resumes where it stopped",
		Long: `Fetch a study a partner facility shared with this one. Blocks are
verified against their content address as they arrive and every instance
against its SHA-256 before it enters the local archive. Blocks already held
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
			var st node.FetchStatus
			if err := cl.do("POST", "/api/v1/fetches", node.FetchRequest{Study: study, From: from}, &st); err != nil {
				return err
			}
			interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
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
			for {
				if bar != nil {
					desc := fmt.Sprintf("%s: %d/%d instances verified", st.IssuerName, st.InstancesDone, st.Instances)
					if st.State == node.FetchWaiting {
						desc += " (holder unreachable, retrying)"
					}
					bar.Describe(desc)
					bar.Set64(st.BytesDone)
				}
				if st.State == node.FetchDone || st.State == node.FetchFailed {
					break
				}
				select {
				case <-interrupted.Done():
					if bar != nil {
						fmt.Fprintln(os.Stderr)
					}
					return errors.New("stopped following the fetch; the node goes on fetching: run the same `pacsnet fetch` to follow it again")
				case <-time.After(150 * time.Millisecond):
				}
				if err := cl.do("GET", "/api/v1/fetches/"+url.PathEscape(st.ID), nil, &st); err != nil {
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
				if err := printJSON(map[string]any{"fetch": st, "seconds": secs, "bytes_fetched": fetched}); err != nil {
					return err
				}
			}
			if st.State == node.FetchFailed {
				return fmt.Errorf("fetch failed: %s", st.Error)
			}
			if !g.json && fetched == 0 {
				fmt.Printf("already complete: all %d instances from %s are held here\n", st.Instances, st.IssuerName)
			} else if !g.json {
				rate := 0.0
				if secs > 0 {
					rate = float64(fetched) / 1e6 / secs
				}
				fmt.Printf("fetched %d instances (%.1f MB, %.1f MB resumed from earlier) from %s in %.2fs: %.1f MB/s\n",
					st.Instances, float64(fetched)/1e6, float64(st.BytesResumed)/1e6, st.IssuerName, secs, rate)
			}
			return nil
		},
	}
	c.Flags().StringVar(&study, "study", "", "Study Instance UID (required)")
	c.Flags().StringVar(&from, "from", "", "partner facility (peer ID or name) to fetch from")
	c.Flags().StringVar(&progress, "progress", "auto", "progress bar: auto (when stderr is a terminal), always or never")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "same as --progress never")
	required(c, "study")
	addJSON(c, g)
	return c
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
	return false, usageError{fmt.Errorf("fetch: --progress %q: want auto, always or never", mode)}
}

// exported is one file of `export --json`.
type exported struct {
	Path           string `json:"path"`
	SOPInstanceUID string `json:"sop_instance_uid"`
	SHA256         string `json:"sha256"`
	Size           int64  `json:"size"`
}

func exportCmd(g *globals) *cobra.Command {
	var study, out string
	var partial bool
	c := &cobra.Command{
		Use:   "export --study UID --out DIR",
		Short: "Write a study's instances as DICOM Part-10 files, each verified by SHA-256",
		Long: `Write every instance of a study held here (imported or fetched) to
DIR/<Series Instance UID>/<SOP Instance UID>.dcm (mode 0640, folders
0750: these are patient data). Each file's SHA-256 is checked against the
archive's record after it is written and synced; the export and its
outcome are audited. File names carry UIDs only, never patient data. A
partly fetched study is refused unless --allow-partial is given.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			base := "/api/v1/studies/" + url.PathEscape(study)
			q := ""
			if partial {
				q = "?partial=1"
			}
			var insts []node.InstanceInfo
			if err := cl.do("POST", base+"/export"+q, nil, &insts); err != nil {
				return err
			}
			var files []exported
			var total int64
			start := time.Now()
			err = func() error {
				for _, in := range insts {
					var data []byte
					if err := cl.do("GET", base+"/instances/"+url.PathEscape(in.SOPInstanceUID), nil, &data); err != nil {
						return fmt.Errorf("export %s: %w", in.SOPInstanceUID, err)
					}
					path := filepath.Join(out, safeName(in.Series), safeName(in.SOPInstanceUID)+".dcm")
					if err := writeSynced(path, data); err != nil {
						return err
					}
					sum, err := fileSHA256(path)
					if err != nil {
						return err
					}
					if sum != in.Digest {
						return fmt.Errorf("export %s: written file's SHA-256 %s differs from the archive's %s", path, sum, in.Digest)
					}
					files = append(files, exported{Path: path, SOPInstanceUID: in.SOPInstanceUID, SHA256: sum, Size: int64(len(data))})
					total += int64(len(data))
				}
				return nil
			}()
			// The node audits what was really written, also when it failed
			// half-way (the reason is the error's kind, not its text: a
			// path could name a patient).
			done := map[string]any{"written": len(files)}
			if err != nil {
				done["failed"] = "write error"
			}
			if aerr := cl.do("POST", base+"/export/done", done, nil); aerr != nil && err == nil {
				err = fmt.Errorf("export written, but not audited: %w", aerr)
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(map[string]any{"study": study, "out": out, "files": files, "bytes": total, "verified": len(files)})
			}
			fmt.Printf("exported %d instances (%.1f MB) to %s in %.2fs; every SHA-256 verified\n", len(files), float64(total)/1e6, out, time.Since(start).Seconds())
			return nil
		},
	}
	c.Flags().StringVar(&study, "study", "", "Study Instance UID (required)")
	c.Flags().StringVar(&out, "out", "", "output folder (required)")
	c.Flags().BoolVar(&partial, "allow-partial", false, "export a partly fetched study as far as it is held")
	required(c, "study", "out")
	addJSON(c, g)
	return c
}

// safeName turns a UID into a file name. A valid UID (digits and dots) is
// used as it is; anything else (real files carry hex "UIDs") becomes "x"
// and the first 32 hex digits of its SHA-256, so two different values
// never share a name and no byte of the value reaches the file system.
func safeName(s string) string {
	ok := s != "" && s != "." && s != ".." && len(s) <= 64
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c == '.') {
			ok = false
		}
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "x" + hex.EncodeToString(sum[:16])
}

func writeSynced(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}
