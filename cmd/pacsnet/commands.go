package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/node"
)

func initCmd(g *globals) *cobra.Command {
	var name, ae string
	c := &cobra.Command{
		Use:   "init --name NAME [--ae AETITLE]",
		Short: "Create a facility home: config, keys, encrypted archive, API token",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			opts := node.InitOptions{Name: name, AETitle: ae}
			if err := opts.Validate(); err != nil {
				return usageError{fmt.Errorf("init: %w", err)} // a flag's value is wrong: exit 2
			}
			cfg, err := node.Init(g.home, opts)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(api.InitResult{Home: g.home, Name: cfg.Name, AETitle: cfg.AETitle,
					HTTPAddr: cfg.HTTPAddr, P2PAddrs: cfg.P2PAddrs, DICOMAddr: cfg.DICOMAddr})
			}
			fmt.Printf("initialised %q (AE %s) in %s\n", cfg.Name, cfg.AETitle, g.home)
			fmt.Printf("addresses api=%s dicom=%s p2p=%s (config.toml)\n", cfg.HTTPAddr, cfg.DICOMAddr, strings.Join(cfg.P2PAddrs, ","))
			fmt.Printf("next: pacsnet --home %s serve\n", g.home)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "facility name, e.g. \"St Mary\" (required)")
	c.Flags().StringVar(&ae, "ae", "", "DICOM AE title (default: derived from the name)")
	required(c, "name")
	addJSON(c, g)
	return c
}

func serveCmd(g *globals) *cobra.Command {
	var httpAddr, dicomAddr, logLevel string
	var p2p []string
	var uploadRate int64
	c := &cobra.Command{
		Use:   "serve [--http ADDR] [--p2p MULTIADDR]... [--dicom ADDR]",
		Short: "Run the facility node until SIGINT or SIGTERM",
		Long: `Run the facility node: the libp2p host (TCP and QUIC, Noise), the
partner-only connection gater and the local HTTP API. The flags override the
config file's addresses for this run. One line on stderr says where the
node listens; HOME/run/api.json tells the other commands.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := node.LoadConfig(g.home)
			if err != nil {
				return err
			}
			if httpAddr != "" {
				cfg.HTTPAddr = httpAddr
			}
			if len(p2p) > 0 {
				cfg.P2PAddrs = p2p
			}
			if dicomAddr != "" {
				cfg.DICOMAddr = dicomAddr
			}
			if c.Flags().Changed("upload-rate") {
				cfg.Exchange.UploadRate = uploadRate
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			if cfg.MemoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(int64(cfg.MemoryLimit))
			}
			n, err := node.Open(g.home, cfg, node.Options{Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			runErr := n.Run(ctx)
			log.Info("shutting down")
			if err := n.Close(); err != nil && runErr == nil {
				runErr = err
			}
			return runErr
		},
	}
	c.Flags().StringVar(&httpAddr, "http", "", "local API listen address (config http_addr; default 127.0.0.1:7480)")
	c.Flags().StringSliceVar(&p2p, "p2p", nil, "libp2p listen multiaddr, repeatable (config p2p_addrs)")
	c.Flags().StringVar(&dicomAddr, "dicom", "", "DICOM listen address (config dicom_addr; default 127.0.0.1:11112, or the first port after it free and unnamed by a neighbouring home at init)")
	c.Flags().Int64Var(&uploadRate, "upload-rate", 0, "cap on bytes/s served to partners, 0 = unlimited (config exchange.upload_rate)")
	c.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return c
}

func statusCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the running node: health, addresses, archive size, free disk, partners online, outbox, fetches",
		Long: `Show the running node: its name and addresses; its health (degraded, with
the reasons, when the archive's disk is almost full or manifests keep
failing delivery); the archive's size and the free disk space; each
partner's reachability (online: connected now; else when it was last
seen, as far as this node saw since it started) with the manifests
waiting for it; the fetches in progress; and, with dicom.forward_to, the
fetched studies waiting to be sent to that AE.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(st)
			}
			return printStatus(os.Stdout, st)
		},
	}
	addJSON(c, g)
	return c
}

func inviteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "invite",
		Short: "Print this facility's signed invite for a partner to add",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			inv, err := cl.Invite(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(inv)
			}
			if inv.Notice != "" {
				fmt.Fprintln(os.Stderr, "pacsnet: "+inv.Notice)
			}
			fmt.Println(inv.Invite)
			return nil
		},
	}
	addJSON(c, g)
	return c
}

func peerCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "peer",
		Short: "Manage partner facilities",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
			}
			return usageError{fmt.Errorf("%s: want a subcommand: add, remove or list", c.CommandPath())}
		},
	}
	add := &cobra.Command{
		Use:   "add INVITE|FILE|-",
		Short: "Admit the facility an invite describes as a partner",
		Long: `Admit the facility an invite describes as a partner. The invite is the
line 'pacsnet invite' printed at the partner: given as it is, or in a
file named instead, or read from standard input with '-'. Adding the same
invite again changes nothing; an invite with new addresses or a new name
updates the partner.`,
		Args: exactArgs(1, "one invite, a file holding one, or - for standard input"),
		RunE: func(c *cobra.Command, args []string) error {
			invite, err := readInvite(args[0], c.InOrStdin())
			if err != nil {
				return err
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			p, err := cl.AddPartner(c.Context(), invite)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(p)
			}
			fmt.Printf("added partner %q (%s)\n", printable(p.Name), p.PeerID)
			return nil
		},
	}
	addJSON(add, g)
	remove := &cobra.Command{
		Use:   "remove PEER",
		Short: "End a partnership: revoke its grants, drop queued manifests, refuse its connections",
		Args:  exactArgs(1, "one partner (peer ID or name)"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			p, err := cl.RemovePartner(c.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(p)
			}
			fmt.Printf("removed partner %q (%s)\n", printable(p.Name), p.PeerID)
			switch {
			case p.RevokedGrants == 0:
				fmt.Println("it held no live grant")
			case p.Undelivered == 0:
				fmt.Printf("revoked its %d live grant(s) and told it so before cutting it off\n", p.RevokedGrants)
			default:
				fmt.Printf("revoked its %d live grant(s); %d manifest(s) did not reach it in time (exchange.farewell_timeout): its next request is refused all the same\n",
					p.RevokedGrants, p.Undelivered)
			}
			return nil
		},
	}
	addJSON(remove, g)
	// `peer list` is `peers`, for those who look for it here.
	list := peersCmd(g)
	list.Use, list.Short = "list", "List partner facilities (same as `pacsnet peers`)"
	c.AddCommand(add, remove, list)
	return c
}

func peersCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "peers",
		Short: "List partner facilities: reachable (connected now) or when last seen",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ps, err := cl.Partners(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(ps)
			}
			tw := table("NAME", "PEER ID", "REACHABLE", "LAST SEEN", "ADDED")
			for _, p := range ps {
				tw.row(p.Name, p.PeerID, reachable(p.Online), lastSeen(p.Online, p.LastSeen), fmtTime(p.Added))
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func importCmd(g *globals) *cobra.Command {
	var parallel int
	var verbose, noProgress bool
	var progress string
	c := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import DICOM files and folders (recursive) into the local archive",
		Long: `Import DICOM files and folders (recursively) into the local archive.
Each file is validated, normalized, encrypted and committed before it is
reported. A progress bar on a terminal, then a summary ("214 files: 210
stored, 3 already present, 1 not a DICOM file"); files that were not
stored or carry warnings are listed above it, in file order, and every
file with --verbose.
Exit status 1 when any file was rejected or failed.`,
		Args: minArgs(1, "at least one file or folder"),
		RunE: func(c *cobra.Command, args []string) error {
			if parallel < 1 || parallel > 64 {
				return usageError{fmt.Errorf("import: --parallel must be 1-64")}
			}
			if progress != "auto" && progress != "always" && progress != "never" {
				return usageError{fmt.Errorf("import: --progress %q: want auto, always or never", progress)}
			}
			draw, _ := drawProgress(progress, noProgress || g.json)
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			start := time.Now()
			results, skipped := collectImports(args)
			var bar *progressbar.ProgressBar
			if draw && len(results) > 0 {
				bar = importBar(len(results))
			}
			// Several files in flight let the node group their synced
			// commits; results are still reported in file order.
			done := make([]chan struct{}, len(results))
			sem := make(chan struct{}, parallel)
			for i := range results {
				done[i] = make(chan struct{})
				if results[i].Outcome != "" { // a walk error, already decided
					close(done[i])
					continue
				}
				go func() {
					defer close(done[i])
					sem <- struct{}{}
					defer func() { <-sem }()
					r := &results[i]
					res, err := importFile(c.Context(), cl, r.Path)
					if err != nil {
						res = api.ImportResult{Outcome: api.OutcomeFailed, Error: unreachable(err).Error()}
					}
					r.ImportResult = res
				}()
			}
			counts := map[string]int{}
			var bytes int64
			for i := range results {
				<-done[i]
				r := results[i]
				counts[r.Outcome]++
				if r.Outcome == api.OutcomeStored {
					bytes += r.Size
				}
				if !g.json && (verbose || worthALine(r)) {
					if bar != nil {
						bar.Clear()
					}
					printImportLine(r)
				}
				if bar != nil {
					bar.Add(1)
				}
			}
			if bar != nil {
				bar.Finish()
			}
			secs := time.Since(start).Seconds()
			bad := counts[api.OutcomeRejected] + counts[api.OutcomeFailed] + counts[api.OutcomeConflict]
			if g.json {
				if results == nil {
					results = []api.ImportFileResult{}
				}
				if err := printJSON(api.ImportReport{Results: results, Summary: counts, Bytes: bytes, Seconds: secs, Skipped: skipped}); err != nil {
					return err
				}
			} else {
				fmt.Printf("%s (%.1f MB in %.1fs)\n", importSummary(results), float64(bytes)/1e6, secs)
				if skipped > 0 {
					fmt.Printf("%s skipped in folders (hidden, DICOMDIR, links, or named .txt/.md/.jpg/...): name a file to import it anyway\n", files(skipped))
				}
			}
			if len(results) == 0 {
				return fmt.Errorf("no files found under %s", strings.Join(args, ", "))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %s not imported", bad, files(len(results)))
			}
			return nil
		},
	}
	c.Flags().IntVar(&parallel, "parallel", 4, "files in flight at once")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "a line for every file, also those stored or already present")
	c.Flags().StringVar(&progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	c.Flags().BoolVar(&noProgress, "no-progress", false, "same as --progress never")
	addJSON(c, g)
	return c
}

// importFile streams one file to the node; the file is never held whole in
// the CLI's memory.
func importFile(ctx context.Context, cl *api.Client, path string) (api.ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.ImportResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return api.ImportResult{}, err
	}
	return cl.ImportFile(ctx, f, fi.Size())
}

// files counts files in words: "1 file", "3 files".
func files(n int) string {
	if n == 1 {
		return "1 file"
	}
	return strconv.Itoa(n) + " files"
}

// collectImports lists the files to import under the given paths, in walk
// order; a path that cannot be read is a result with outcome failed.
// skipped counts the files passed over in folders.
func collectImports(roots []string) (out []api.ImportFileResult, skipped int) {
	for _, root := range roots {
		// A file named on the command line is always tried, also through
		// a symbolic link; a folder named by a link is walked. Links met
		// inside a folder are skipped (counted).
		walk := root
		if fi, err := os.Stat(root); err == nil && fi.Mode().IsRegular() {
			out = append(out, api.ImportFileResult{Path: root})
			continue
		} else if err == nil && fi.IsDir() {
			if li, err := os.Lstat(root); err == nil && li.Mode()&fs.ModeSymlink != 0 {
				walk = root + string(filepath.Separator) // Lstat of "link/" follows the link
			}
		}
		filepath.WalkDir(walk, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				out = append(out, api.ImportFileResult{Path: path, ImportResult: api.ImportResult{Outcome: api.OutcomeFailed, Error: err.Error()}})
				return nil
			}
			if d.IsDir() {
				return nil
			}
			// Skip what is plainly not DICOM when walking a folder; a file
			// named on the command line is always tried.
			if !d.Type().IsRegular() || path != walk && (strings.HasPrefix(d.Name(), ".") || d.Name() == "DICOMDIR" || !looksDICOM(d.Name())) {
				skipped++
				return nil
			}
			out = append(out, api.ImportFileResult{Path: path})
			return nil
		})
	}
	return out, skipped
}

// looksDICOM skips files that are plainly not DICOM (notes, manifests)
// when walking a folder; content decides for everything else.
func looksDICOM(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".txt", ".md", ".tsv", ".csv", ".json", ".xml", ".html", ".pdf", ".jpg", ".png", ".zip":
		return false
	}
	return true
}

func studiesCmd(g *globals) *cobra.Command {
	var wide bool
	c := &cobra.Command{
		Use:   "studies [--wide]",
		Short: "List the studies in the local archive",
		Long: `List the studies in the local archive, imported here or fetched from a
partner: patient, date, modalities, description, instances. The STUDY
column shows the shortest prefix of each Study Instance UID that names it
alone (12 characters or more); commands that take --study accept it, or an
accession number or patient ID that names one study. --wide shows whole
UIDs, accession numbers and values uncut.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ss, err := cl.Studies(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(ss)
			}
			return printStudies(os.Stdout, ss, wide)
		},
	}
	addWide(c, &wide)
	addJSON(c, g)
	return c
}

func grantCmd(g *globals) *cobra.Command {
	var to, expires, notBefore, purpose, patient, issuer, user string
	var studies []string
	c := &cobra.Command{
		Use:   "grant --to PEER (--study UID… | --patient ID [--issuer ISSUER]) [--user NAME] [--purpose P] [--expires 72h] [--not-before 12h]",
		Short: "Grant a partner facility access to studies held here, or to a patient's studies",
		Long: `Grant a partner facility access to studies held here (--study, repeatable or
comma-separated), or to every study of a patient held here (--patient, with
--issuer when the studies carry an Issuer of Patient ID): the patient's studies
that arrive later are sent to the partner too, for as long as the grant lasts.
--user names the one user at the partner who may fetch. The grant is signed by
this facility, so any node can verify it offline; it expires (--expires, at
most config exchange.max_grant_ttl) and can be revoked (pacsnet revoke).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if (len(studies) == 0) == (patient == "") {
				return usageError{errors.New("grant: name the studies (--study) or the patient (--patient), one of the two")}
			}
			if issuer != "" && patient == "" {
				return usageError{errors.New("grant: --issuer qualifies --patient")}
			}
			if expires != "" {
				if d, err := api.ParseDuration(expires); err != nil || d <= 0 {
					return usageError{fmt.Errorf("grant: --expires %q: want a positive duration such as 72h, 90m or 3d", printable(expires))}
				}
			}
			switch purpose {
			case api.PurposeTreatment, api.PurposeSecondOpinion:
			case api.PurposeResearch:
				return fmt.Errorf("grant: research-deidentified grants need de-identification (PS3.15 Basic Profile), which this build does not do yet")
			default:
				return usageError{fmt.Errorf("grant: --purpose %q: want treatment or second-opinion", printable(purpose))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			req := api.GrantRequest{To: to, Expires: expires, NotBefore: notBefore, Purpose: purpose, GranteeUser: user}
			for _, st := range studies {
				u, err := resolveStudy(c.Context(), cl, localStudies, st)
				if err != nil {
					return err
				}
				req.StudyUIDs = append(req.StudyUIDs, u)
			}
			if patient != "" {
				req.Patient = &api.GrantPatient{PatientID: patient, IssuerOfPatientID: issuer}
			}
			gr, notice, err := cl.Grant(c.Context(), req)
			if err != nil {
				return err
			}
			if notice != "" {
				fmt.Fprintln(os.Stderr, "pacsnet: "+notice)
			}
			if g.json {
				return printJSON(gr)
			}
			what := strings.Join(gr.StudyUIDs, ", ")
			if gr.Patient != nil {
				what = "the patient's studies (now and later)"
			}
			if gr.GranteeUser != "" {
				what += " for user " + printable(gr.GranteeUser)
			}
			from := ""
			if gr.NotBefore.After(gr.Created.Add(time.Second)) {
				from = " from " + fmtTime(gr.NotBefore)
			}
			fmt.Printf("granted %s to %s%s until %s (grant %s); manifest queued\n", what, partnerName(gr.Grantee), from, fmtTime(gr.Expires), gr.GrantID)
			return nil
		},
	}
	c.Flags().StringVar(&to, "to", "", "partner facility: peer ID or name (required)")
	c.Flags().StringSliceVar(&studies, "study", nil, "a study granted: its Study Instance UID, a prefix of it, or its accession number or patient ID, when that names one study (repeatable)")
	c.Flags().StringVar(&patient, "patient", "", "grant every study of this Patient ID held here, including later ones")
	c.Flags().StringVar(&issuer, "issuer", "", "the Issuer of Patient ID that --patient is matched with (exactly; empty matches studies without one)")
	c.Flags().StringVar(&user, "user", "", "the one user at the partner who may fetch (default: any user there)")
	c.Flags().StringVar(&expires, "expires", "", "how long the grant lasts: 72h, 90m, 3d (default: config exchange.default_grant_ttl, 3d)")
	c.Flags().StringVar(&notBefore, "not-before", "", "when the grant starts: a duration from now (12h) or an RFC 3339 time (default: now)")
	c.Flags().StringVar(&purpose, "purpose", "treatment", "treatment or second-opinion (research-deidentified needs de-identification, not in this build)")
	required(c, "to")
	addJSON(c, g)
	return c
}

func grantsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "grants",
		Short: "List grants this facility issued",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			gs, err := cl.Grants(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(gs)
			}
			tw := table("GRANT", "STATE", "GRANTEE", "SCOPE", "PURPOSE", "EXPIRES")
			for _, s := range gs {
				scope := strings.Join(s.StudyUIDs, ",")
				if s.Patient != nil {
					scope = "patient " + printable(s.Patient.PatientID)
					if s.Patient.IssuerOfPatientID != "" {
						scope += "^^^" + printable(s.Patient.IssuerOfPatientID)
					}
				}
				grantee := partnerName(s.Grantee)
				if s.GranteeUser != "" {
					grantee += " (" + printable(s.GranteeUser) + ")"
				}
				tw.row(s.GrantID, s.State, grantee, scope, s.Purpose, fmtTime(s.Expires))
			}
			return tw.Flush()
		},
	}
	addJSON(c, g)
	return c
}

func revokeCmd(g *globals) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "revoke GRANT",
		Short: "Revoke a grant: the partner's next block request is refused",
		Long: `Revoke a grant: from now on the partner's block requests under it are
refused, and a signed revocation is sent to the partner, which forgets the
study key. Revocation ends future access only: what the partner already
fetched stays in its archive (as with any copy given to another
facility). Another live grant for the same study keeps the partner's
access; 'pacsnet grants' lists them.`,
		Args: exactArgs(1, "one grant ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if reason != "" && !slices.Contains(api.RevokeReasons, reason) {
				return usageError{fmt.Errorf("revoke: --reason must be one of %s (a code: free text could name a patient and the audit log keeps it for good)",
					strings.Join(api.RevokeReasons, ", "))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			rv, err := cl.Revoke(c.Context(), args[0], reason)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(rv)
			}
			fmt.Printf("revoked grant %s\n", args[0])
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why, as a code: "+strings.Join(api.RevokeReasons, ", ")+" (default unspecified)")
	addJSON(c, g)
	return c
}

func sharedCmd(g *globals) *cobra.Command {
	var wide bool
	c := &cobra.Command{
		Use:   "shared [--wide]",
		Short: "List studies partner facilities shared with this facility",
		Long: `List the studies partner facilities shared with this facility: patient,
date, modalities, description, who shared it, the state of its grant
(available, fetched, revoked, expired), instances and expiry. The STUDY
column shows the shortest unique prefix of each Study Instance UID, which
fetch --study accepts, as it does an accession number or patient ID that
names one study. --wide shows whole UIDs, values uncut, sizes and the
FETCHED column.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ss, err := cl.Shared(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(ss)
			}
			return printShared(os.Stdout, ss, wide)
		},
	}
	addWide(c, &wide)
	addJSON(c, g)
	return c
}

func auditCmd(g *globals) *cobra.Command {
	var verify, checkpoint bool
	var against []string
	var since, export string
	var q api.AuditQuery
	c := &cobra.Command{
		Use:   "audit [--since 24h|3d|2026-12-01] [--peer P] [--study UID] [--action A] [--export FORMAT] | --verify [--against FILE]… | --checkpoint",
		Short: "Show the hash-chained audit log, verify it, or sign a checkpoint of it",
		Long: `Show the hash-chained audit log, oldest first, optionally only the entries
since a time (a duration ago such as 24h or 3d, a date, or an RFC 3339 time),
about one partner (name or peer ID, also a former partner's), one study, or
of one action (` + strings.Join(api.AuditActions, ", ") + `).

--verify checks every hash and link of the chain, and every signed
checkpoint the node stores: the log must still hold each checkpoint's entry
with the hash it signed, so a truncated or rewritten log fails. It works on
a stopped node's home too (no node needs to run), e.g. after an incident or
on a restored backup.

--export FORMAT writes the selected entries to stdout, one per line: json
(as stored: prev and hash can be checked), dicom (DICOM audit messages,
PS3.15 A.5), syslog or syslog-dicom (RFC 5424 lines with the JSON entry or
the DICOM message), e.g. for a SIEM. The export itself is audited.
config.toml [audit.syslog] streams every entry to a collector as it is
written instead (docs/operations.md).

--checkpoint has the node sign the head of its log now and prints the
signed checkpoint as JSON (the node also signs one every
audit.checkpoint_interval and when it stops). Keep it off the node's
machine: --verify --against FILE checks the log against it, which catches a
truncation even if the node's own checkpoints were deleted with it.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			filtered := since != "" || q.Partner != "" || q.Study != "" || q.Action != ""
			if len(against) > 0 && !verify {
				return usageError{errors.New("audit: --against goes with --verify")}
			}
			if export != "" && (verify || checkpoint) {
				return usageError{errors.New("audit: --export goes with the filters, not with --verify or --checkpoint")}
			}
			if export != "" && !slices.Contains(api.AuditFormats, export) {
				return usageError{fmt.Errorf("audit: --export must be one of %s", strings.Join(api.AuditFormats, ", "))}
			}
			if checkpoint {
				if verify || filtered {
					return usageError{errors.New("audit: --checkpoint takes no other flag")}
				}
				cl, err := newClient(g.home)
				if err != nil {
					return err
				}
				sc, err := cl.AuditCheckpoint(c.Context())
				if err != nil {
					return err
				}
				return printJSON(sc)
			}
			if verify {
				if filtered {
					return usageError{errors.New("audit: --verify checks the whole chain; it takes no filters")}
				}
				return auditVerify(c, g, against)
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				q.Since = t
			}
			if q.Action != "" && !slices.Contains(api.AuditActions, q.Action) {
				return usageError{fmt.Errorf("audit: --action must be one of %s", strings.Join(api.AuditActions, ", "))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			if export != "" {
				body, err := cl.AuditExport(c.Context(), api.AuditExportQuery{After: q.After, Since: q.Since, Partner: q.Partner,
					Study: q.Study, Action: q.Action, Format: export})
				if err != nil {
					return err
				}
				defer body.Close()
				_, err = io.Copy(os.Stdout, body)
				return err
			}
			es := []api.AuditEntry{}
			for {
				page, next, err := cl.Audit(c.Context(), q)
				if err != nil {
					return err
				}
				es = append(es, page...)
				if next == 0 {
					break
				}
				q.After = next
			}
			if g.json {
				return printJSON(es)
			}
			tw := table("SEQ", "TIME", "ACTOR", "ACTION", "DECISION", "PEER", "GRANT", "STUDY", "REASON")
			for _, e := range es {
				peer := ""
				if e.Peer != nil {
					peer = partnerName(*e.Peer)
				}
				reason := e.Reason
				if e.Count > 1 {
					reason += fmt.Sprintf(" (%d times)", e.Count)
				}
				if e.Expires != nil {
					reason += " until " + fmtTime(*e.Expires)
				}
				tw.row(e.Seq, fmtTime(e.Time), e.Actor, e.Action, e.Decision, peer, e.GrantID, e.StudyUID, reason)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&verify, "verify", false, "check every hash and link of the chain and every stored checkpoint (also on a stopped node's home)")
	c.Flags().StringArrayVar(&against, "against", nil, "with --verify: also check against this checkpoint file (from audit --checkpoint), repeatable")
	c.Flags().BoolVar(&checkpoint, "checkpoint", false, "sign the head of the log now and print the signed checkpoint (JSON)")
	c.Flags().StringVar(&export, "export", "", "write the entries to stdout as "+strings.Join(api.AuditFormats, ", "))
	c.Flags().StringVar(&since, "since", "", "only entries since: a duration ago (24h, 3d), a date (2026-12-01) or an RFC 3339 time")
	c.Flags().StringVar(&q.Partner, "peer", "", "only entries about this partner (name or peer ID)")
	c.Flags().StringVar(&q.Study, "study", "", "only entries about this Study Instance UID")
	c.Flags().StringVar(&q.Action, "action", "", "only entries of this action")
	addJSON(c, g)
	return c
}

// parseSince reads --since: a duration before now (24h, 3d), a local date
// (2026-12-01, from its midnight) or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := api.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("audit: --since %q: want a duration ago (24h, 3d), a date (2026-12-01) or an RFC 3339 time", printable(s))
}

// auditVerify verifies the chain: in this process when no node serves the
// home (the archive is not locked), else through the running node's API;
// against the checkpoints in the files too.
func auditVerify(c *cobra.Command, g *globals, files []string) error {
	var cps []api.SignedAuditCheckpoint
	for _, f := range files {
		cp, err := readCheckpointFile(f)
		if err != nil {
			return err
		}
		cps = append(cps, cp)
	}
	res, err := node.VerifyAudit(g.home, cps...)
	if errors.Is(err, node.ErrServing) {
		cl, cerr := newClient(g.home)
		if cerr != nil {
			return cerr
		}
		if len(cps) > 0 {
			res, err = cl.AuditVerifyAgainst(c.Context(), cps)
		} else {
			res, err = cl.AuditVerify(c.Context())
		}
	}
	if err != nil {
		return err
	}
	if g.json {
		if err := printJSON(res); err != nil {
			return err
		}
	}
	if !res.OK {
		return fmt.Errorf("audit log is corrupt: %s", printable(res.Error))
	}
	if !g.json {
		fmt.Printf("audit log OK: %d entries, head %s\n", res.Entries, res.Head)
		if cp := res.Checkpoint; cp != nil {
			fmt.Printf("%d signed checkpoints stored; the latest checked (#%d, signed %s) covers entries 1-%d\n",
				res.Checkpoints, cp.Index, fmtTime(cp.Time), cp.Seq)
		} else {
			fmt.Println("no signed checkpoint yet: a truncation of the log's end would not show")
		}
		if len(cps) > 0 {
			fmt.Printf("checked against %d checkpoint files\n", len(cps))
		}
	}
	return nil
}

// readCheckpointFile reads a checkpoint written by audit --checkpoint
// (bounded; the node or VerifyAudit checks its signature).
func readCheckpointFile(name string) (api.SignedAuditCheckpoint, error) {
	var cp api.SignedAuditCheckpoint
	f, err := os.Open(name)
	if err != nil {
		return cp, fmt.Errorf("audit: --against: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 8<<10))
	if err != nil {
		return cp, fmt.Errorf("audit: --against %s: %w", printable(name), err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil || len(b) == 8<<10 {
		return cp, fmt.Errorf("audit: --against %s: not a checkpoint written by pacsnet audit --checkpoint", printable(name))
	}
	return cp, nil
}

func synthCmd(g *globals) *cobra.Command {
	var out, studyUID, patientID string
	var slices, size int
	var seed int64
	c := &cobra.Command{
		Use:   "synth --out DIR [--slices 200] [--patient-id ID]",
		Short: "Write a synthetic CT series (realistic UIDs, geometry, 16-bit pixels)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if slices < 1 || size < 1 {
				return usageError{fmt.Errorf("synth: --slices and --size must be at least 1")}
			}
			study, paths, err := synth.WriteCT(out, synth.CTOptions{Slices: slices, Rows: size, Cols: size, Seed: seed, StudyUID: studyUID, PatientID: patientID})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(api.SynthResult{StudyUID: study, Files: len(paths), Dir: out})
			}
			fmt.Printf("wrote %d CT slices of study %s to %s\n", len(paths), printable(study), printable(out))
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "output folder (required)")
	c.Flags().IntVar(&slices, "slices", 200, "number of slices")
	c.Flags().IntVar(&size, "size", 512, "rows and columns")
	c.Flags().Int64Var(&seed, "seed", 1, "seed: the same seed writes the same study")
	c.Flags().StringVar(&studyUID, "study-uid", "", "write this Study Instance UID as given, conforming or not (default: derived from the seed)")
	c.Flags().StringVar(&patientID, "patient-id", "", "the Patient ID to write (default: derived from the seed), e.g. to make a patient's later study")
	required(c, "out")
	addJSON(c, g)
	return c
}

func versionCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			v := api.Version{Version: "(devel)", Go: runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v.Version = bi.Main.Version
			}
			if g.json {
				return printJSON(v)
			}
			fmt.Println("pacsnet", v.Version, "("+v.Go+")")
			return nil
		},
	}
	addJSON(c, g)
	return c
}

// tableWriter prints a listing's rows aligned in columns. Every cell goes
// through printable: values from DICOM data and from partners never
// reach the terminal with control characters.
type tableWriter struct{ tw *tabwriter.Writer }

func table(cols ...string) *tableWriter { return tableTo(os.Stdout, cols...) }

func tableTo(w io.Writer, cols ...string) *tableWriter {
	t := &tableWriter{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(toAny(cols)...)
	return t
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// row prints one row; each cell is formatted with %v (floats with one
// decimal) and made printable.
func (t *tableWriter) row(cells ...any) {
	strs := make([]string, len(cells))
	for i, c := range cells {
		switch v := c.(type) {
		case float64:
			strs[i] = fmt.Sprintf("%.1f", v)
		default:
			strs[i] = printable(fmt.Sprint(v))
		}
	}
	fmt.Fprintln(t.tw, strings.Join(strs, "\t"))
}

func (t *tableWriter) Flush() error { return t.tw.Flush() }

// printable escapes control characters (C0, DEL, C1: escape sequences,
// newlines, tabs) and invalid UTF-8 as \xNN or \u{NNNN}, so that text
// from DICOM data, partners or file names cannot move the cursor, clear
// the screen or forge lines on the admin's terminal.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, "\\u{%04x}", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fmtTime shows a time in the local zone, with the zone named.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}
