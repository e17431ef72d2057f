package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
)

// aeCmd manages the known DICOM application entities: the modalities,
// workstations and PACS that may associate with the node, and where
// C-MOVE and sending reach them.
func aeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "ae",
		Short: "Manage known DICOM application entities (modalities, workstations, PACS)",
		Long: `Manage the DICOM application entities the node knows: only a known
calling AE may open an association with the node (C-ECHO, C-STORE, queries),
and a known AE is where C-MOVE and 'pacsnet send' deliver. AEs written in
config.toml ([[dicom.ae]]) are listed too, and are changed only there.`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
			}
			return usageError{fmt.Errorf("%s: want a subcommand: add, remove, list or echo", c.CommandPath())}
		},
	}
	var req api.AddAERequest
	add := &cobra.Command{
		Use:   "add AETITLE --host HOST --port PORT [--restrict-address] [--tls]",
		Short: "Add a known AE, or update it",
		Long: `Add a known application entity, or update one added before. --host and
--port say where it listens (for C-MOVE and sending); --restrict-address
accepts its associations only from the addresses HOST resolves to; --tls
reaches it with DICOM TLS.`,
		Args: exactArgs(1, "one AE title"),
		RunE: func(c *cobra.Command, args []string) error {
			req.Title = args[0]
			if req.Port < 1 || req.Port > 65535 {
				return usageError{fmt.Errorf("ae add: --port %d: want 1-65535", req.Port)}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ae, err := cl.AddAE(c.Context(), req)
			if err != nil {
				return fmt.Errorf("ae add: %w", err)
			}
			if g.json {
				return printJSON(ae)
			}
			fmt.Printf("added AE %s at %s\n", printable(ae.Title), printable(aeAddr(ae)))
			return nil
		},
	}
	add.Flags().StringVar(&req.Host, "host", "", "host name or IP address the AE listens on (required)")
	add.Flags().IntVar(&req.Port, "port", 0, "the AE's DICOM port (required)")
	add.Flags().BoolVar(&req.RestrictAddress, "restrict-address", false, "accept associations from this AE only from HOST's addresses")
	add.Flags().BoolVar(&req.TLS, "tls", false, "reach this AE with DICOM TLS")
	required(add, "host", "port")
	addJSON(add, g)

	remove := &cobra.Command{
		Use:   "remove AETITLE",
		Short: "Forget a known AE added with 'ae add'",
		Args:  exactArgs(1, "one AE title"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ae, err := cl.RemoveAE(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("ae remove: %w", err)
			}
			if g.json {
				return printJSON(ae)
			}
			fmt.Printf("removed AE %s; it can no longer associate with this node\n", printable(ae.Title))
			return nil
		},
	}
	addJSON(remove, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the known AEs",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			aes, err := cl.AEs(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(aes)
			}
			tw := table("AE TITLE", "ADDRESS", "RESTRICTED", "TLS", "SOURCE", "ADDED")
			for _, ae := range aes {
				tw.row(ae.Title, aeAddr(ae), yesNo(ae.RestrictAddress), yesNo(ae.TLS), ae.Source, fmtTime(ae.Added))
			}
			return tw.Flush()
		},
	}
	addJSON(list, g)
	echo := &cobra.Command{
		Use:   "echo AETITLE",
		Short: "Verify a known AE: the node sends it C-ECHO",
		Args:  exactArgs(1, "one AE title"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			res, err := cl.EchoAE(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("ae echo: %w", err)
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("%s answered C-ECHO (%.0f ms)\n", printable(res.Title), res.Milliseconds)
			return nil
		},
	}
	addJSON(echo, g)
	c.AddCommand(add, remove, list, echo)
	return c
}

func aeAddr(ae api.AE) string {
	host := ae.Host
	for _, r := range host {
		if r == ':' { // an IPv6 address
			host = "[" + host + "]"
			break
		}
	}
	return host + ":" + strconv.Itoa(ae.Port)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
