// Command pacsnet runs and administers a pacsnet facility node.
//
// `pacsnet serve` runs the node; every other command talks to the running
// node through its local HTTP API (Badger admits one process). See
// `pacsnet help`.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit statuses: 0 success, 1 failure, 2 usage error.
const (
	exitFailure = 1
	exitUsage   = 2
)

// interruptedError: a signal ended the command (not a failure): the exit
// status is 128 + the signal's number, as shells report it (130 for
// Ctrl-C).
type interruptedError struct {
	sig syscall.Signal
	msg string
}

func (e interruptedError) Error() string { return e.msg }

// usageError marks errors in how the command was called.
type usageError struct{ error }

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	err = unreachable(err)
	var ie interruptedError
	if errors.As(err, &ie) {
		fmt.Fprintf(os.Stderr, "pacsnet: %v\n", err)
		return 128 + int(ie.sig)
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(os.Stderr, "pacsnet: %v\nRun 'pacsnet help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "pacsnet: %v\n", err)
	return exitFailure
}

// isCobraUsage recognises cobra's own usage errors, which it does not type.
func isCobraUsage(err error) bool {
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag", "required flag(s) "} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

type globals struct {
	home string
	json bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "pacsnet",
		Short: "Federated peer-to-peer medical image exchange: one node per facility",
		Long: `pacsnet runs a facility's node: its encrypted DICOM archive, and the
exchange of signed, encrypted study manifests and images with partner
facilities, only under grants the data-holding facility issued.

Start with 'pacsnet init --name "St Mary"', then 'pacsnet serve'. The other
commands talk to the running node. The home directory is --home, or
$PACSNET_HOME, or ~/.pacsnet.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", defaultHome(), "node home directory ($PACSNET_HOME)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		initCmd(g), serveCmd(g), statusCmd(g), inviteCmd(g), peerCmd(g), peersCmd(g), importCmd(g),
		studiesCmd(g), grantCmd(g), grantsCmd(g), revokeCmd(g), sharedCmd(g), fetchCmd(g),
		exportCmd(g), auditCmd(g), synthCmd(g), versionCmd(g), sendCmd(g), netsimCmd(g),
	)
	root.AddCommand(aeCmd(g))
	root.AddCommand(userCmd(g), tokenCmd(g))
	root.AddCommand(searchCmd(g), requestCmd(g), requestsCmd(g), approveCmd(g), denyCmd(g), reviewCmd(g), eraseNoteCmd(g))
	return root
}

func defaultHome() string {
	if h := os.Getenv("PACSNET_HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return h + "/.pacsnet"
	}
	return ".pacsnet"
}

// args validators that report usage errors (exit 2).
// The messages name the command without the program's name, which the
// error line already starts with ("pacsnet: fetch: …").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			err := fmt.Errorf("%s: want %s", cmdName(c), what)
			if n == 0 && len(args) == 1 && c.Flags().Lookup("study") != nil {
				err = fmt.Errorf("%w; name the study with --study %s", err, printable(args[0]))
			}
			return usageError{err}
		}
		return nil
	}
}

func cmdName(c *cobra.Command) string {
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%s: want %s", cmdName(c), what)}
		}
		return nil
	}
}

func addJSON(c *cobra.Command, g *globals) {
	c.Flags().BoolVar(&g.json, "json", false, "print exactly one JSON document on stdout")
}

func required(c *cobra.Command, names ...string) {
	for _, n := range names {
		c.MarkFlagRequired(n)
	}
}
