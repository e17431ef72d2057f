package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
)

// sendLineEvery is how many instances pass between progress lines when no
// bar is drawn (stderr is not a terminal).
const sendLineEvery = 50

func sendCmd(g *globals) *cobra.Command {
	var study, to, progress string
	var noProgress bool
	c := &cobra.Command{
		Use:   "send --study UID --to AE",
		Short: "Send a study held here to a known DICOM application entity (C-STORE), with progress",
		Long: `Send every instance of a study held here (imported, stored by a modality
or fetched from a partner) to a known application entity (pacsnet ae list),
e.g. the local PACS, with DICOM C-STORE. Each instance goes in the transfer
syntax it is stored in: pacsnet does not transcode, so an AE that accepts
none of the syntaxes held gets nothing and the send fails saying so. Progress
is a bar on a terminal, otherwise a line on stderr every 50 instances. The
exit status is 1 when any instance was not stored.`,
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
			if study, err = resolveStudy(c.Context(), cl, localStudies, study); err != nil {
				return err
			}
			st, err := cl.StartSend(c.Context(), api.SendRequest{StudyUID: study, To: to})
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			if draw {
				bar = progressbar.NewOptions(st.Instances,
					progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionShowCount(),
					progressbar.OptionSetDescription("sending to "+printable(st.To)),
					progressbar.OptionFullWidth(),
				)
			}
			lastLine := 0
			for {
				done := st.Completed + st.Warning + st.Failed
				if bar != nil {
					bar.Set(done)
				} else if !g.json && (done-lastLine >= sendLineEvery || (st.State != api.SendRunning && done > lastLine)) {
					line := fmt.Sprintf("sent %d/%d instances to %s", st.Completed+st.Warning, st.Instances, printable(st.To))
					if st.Failed > 0 {
						line += fmt.Sprintf(" (%d not stored)", st.Failed)
					}
					fmt.Fprintln(os.Stderr, line)
					lastLine = done
				}
				if st.State != api.SendRunning {
					break
				}
				time.Sleep(150 * time.Millisecond)
				if st, err = cl.Send(c.Context(), st.SendID); err != nil {
					return err
				}
			}
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
			if g.json {
				if err := printJSON(st); err != nil {
					return err
				}
			}
			if st.State == api.SendFailed {
				return fmt.Errorf("send to %s failed: %s", printable(st.To), printable(st.Error))
			}
			if !g.json {
				fmt.Printf("sent %d instances to %s in %.2fs: %d stored, %d stored with a warning, %d not stored\n",
					st.Instances, printable(st.To), st.Finished.Sub(st.Started).Seconds(), st.Completed, st.Warning, st.Failed)
			}
			if st.Failed > 0 {
				return fmt.Errorf("send to %s: %d of %d instances were not stored (the node's log names why)", printable(st.To), st.Failed, st.Instances)
			}
			return nil
		},
	}
	c.Flags().StringVar(&study, "study", "", studyFlagHelp)
	c.Flags().StringVar(&to, "to", "", "the application entity's title (pacsnet ae list) (required)")
	c.Flags().StringVar(&progress, "progress", "auto", "progress bar: auto (when stderr is a terminal), always or never")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "same as --progress never")
	required(c, "study")
	required(c, "to")
	addJSON(c, g)
	return c
}
