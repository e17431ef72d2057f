package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
)

func requestCmd(g *globals) *cobra.Command {
	var req api.AccessRequestCreate
	c := &cobra.Command{
		Use:   "request --to PARTNER --patient-id ID [--issuer I] [--birth-date YYYYMMDD] [--accession A] --purpose P --reason CODE [--note TEXT] [--emergency]",
		Short: "Ask a partner facility for a patient's studies",
		Long: `Ask a partner facility for a patient's studies, as the user running the command.
The request is signed by this node and sent at once (or, if the partner cannot
be reached now, kept and sent as soon as it can be); the partner's admins see
it (pacsnet requests) and approve it into a grant, whose manifests then arrive
as usual, or deny it. pacsnet requests shows the answer.

--reason is one of ` + strings.Join(api.RequestReasons, ", ") + `.
--note is free text for the partner's admin (at most 1024 bytes): it is kept
out of both facilities' audit chains, and the partner can erase it.
--emergency asks for break-glass access: where the partner allows it for us,
a short grant (default 4h, not extendable) is issued at once, marked as an
emergency everywhere and reviewed by the partner afterwards.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if req.To == "" || req.PatientID == "" || req.Reason == "" {
				return usageError{errors.New("request: --to, --patient-id and --reason are required")}
			}
			if !slices.Contains(api.RequestReasons, req.Reason) {
				return usageError{fmt.Errorf("request: --reason must be one of %s", strings.Join(api.RequestReasons, ", "))}
			}
			switch req.Purpose {
			case api.PurposeTreatment, api.PurposeSecondOpinion:
			case api.PurposeResearch:
				return fmt.Errorf("request: research-deidentified access needs de-identification (PS3.15 Basic Profile), which this build does not do yet")
			default:
				return usageError{fmt.Errorf("request: --purpose %q: want treatment or second-opinion", printable(req.Purpose))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			r, err := cl.SendRequest(c.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r)
			}
			switch r.State {
			case api.RequestUnsent:
				fmt.Printf("request %s queued: %s; it is sent as soon as %s can be reached (pacsnet requests shows it)\n",
					r.RequestID, printable(r.LastError), partnerName(*r.Holder))
			case api.RequestApproved:
				fmt.Printf("request %s: granted at once by %s (emergency access until %s, grant %s); it will be reviewed\n",
					r.RequestID, partnerName(*r.Holder), fmtTime(*r.Expires), r.GrantID)
			default:
				fmt.Printf("request %s sent to %s: %s; pacsnet requests shows the answer\n", r.RequestID, partnerName(*r.Holder), r.State)
			}
			return nil
		},
	}
	c.Flags().StringVar(&req.To, "to", "", "the partner that holds the studies: name or peer ID (required)")
	c.Flags().StringVar(&req.PatientID, "patient-id", "", "the patient's ID at the partner (required)")
	c.Flags().StringVar(&req.Issuer, "issuer", "", "the Issuer of Patient ID")
	c.Flags().StringVar(&req.BirthDate, "birth-date", "", "the patient's birth date, YYYYMMDD, to help the partner match")
	c.Flags().StringVar(&req.Accession, "accession", "", "an accession number we know")
	c.Flags().StringVar(&req.Purpose, "purpose", api.PurposeTreatment, "treatment or second-opinion")
	c.Flags().StringVar(&req.Reason, "reason", "", "why: "+strings.Join(api.RequestReasons, ", ")+" (required)")
	c.Flags().StringVar(&req.Note, "note", "", "free text for the partner's admin (kept out of the audit chains)")
	c.Flags().BoolVar(&req.Emergency, "emergency", false, "ask for break-glass access (granted at once where the partner allows it, reviewed afterwards)")
	addJSON(c, g)
	return c
}

func requestsCmd(g *globals) *cobra.Command {
	var emergency, mine bool
	c := &cobra.Command{
		Use:   "requests [--emergency] [--mine] [--json]",
		Short: "List partners' access requests to us, and ours to partners",
		Long: `List partners' access requests to this facility (for admins: pending and
decided, with how many of the patient's studies are held here) and this
facility's requests to partners, with each partner's latest answer (pending
ones are asked about first). --emergency lists only emergency requests, those
granted by break-glass first, with their review. --mine lists only ours.

Decide with pacsnet approve, pacsnet deny and pacsnet review; a request is
named by its ID or the first 8 or more of its digits.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			var theirs []api.AccessRequest
			if !mine {
				theirs, err = cl.IncomingRequests(c.Context())
				var ae *api.Error
				if errors.As(err, &ae) && ae.Code == api.CodeForbidden {
					theirs, err, mine = nil, nil, true // a clinician sees only ours
				}
				if err != nil {
					return err
				}
			}
			ours, err := cl.Requests(c.Context())
			if err != nil {
				return err
			}
			if emergency {
				keep := func(r api.AccessRequest) bool { return !r.Emergency }
				theirs = slices.DeleteFunc(theirs, keep)
				ours = slices.DeleteFunc(ours, keep)
			}
			if g.json {
				return printJSON(api.RequestLists{Incoming: nonNilList(theirs), Outgoing: nonNilList(ours)})
			}
			if !mine {
				fmt.Println("Requests from partners:")
				if len(theirs) == 0 {
					fmt.Println("  none")
				} else {
					tw := table("ID", "RECEIVED", "FROM", "USER", "PATIENT", "PURPOSE", "REASON", "STUDIES HERE", "STATE", "GRANT", "DECIDED BY", "REVIEW", "NOTE")
					for _, r := range theirs {
						tw.row(r.RequestID[:12], fmtTime(r.Created), partnerName(*r.Requester), printable(r.User), patientOf(r),
							r.Purpose, reasonOf(r), r.Studies, stateOf(r), r.GrantID, printable(r.DecidedBy), reviewOf(r), noteOf(r.Note))
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
				fmt.Println()
			}
			fmt.Println("Our requests:")
			if len(ours) == 0 {
				fmt.Println("  none")
				return nil
			}
			tw := table("ID", "SENT", "TO", "USER", "PATIENT", "PURPOSE", "REASON", "STATE", "GRANT", "UNTIL")
			for _, r := range ours {
				until := ""
				if r.Expires != nil {
					until = fmtTime(*r.Expires)
				}
				tw.row(r.RequestID[:12], fmtTime(r.Created), partnerName(*r.Holder), printable(r.User), patientOf(r), r.Purpose,
					reasonOf(r), stateOf(r), r.GrantID, until)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&emergency, "emergency", false, "only emergency requests")
	c.Flags().BoolVar(&mine, "mine", false, "only this facility's requests to partners")
	addJSON(c, g)
	return c
}

// noteOf shows the start of a request's free-text note on one line.
func noteOf(n string) string {
	n = strings.Join(strings.Fields(printable(n)), " ")
	if r := []rune(n); len(r) > 40 {
		n = string(r[:39]) + "…"
	}
	return n
}

func nonNilList(s []api.AccessRequest) []api.AccessRequest {
	if s == nil {
		return []api.AccessRequest{}
	}
	return s
}

func patientOf(r api.AccessRequest) string {
	p := printable(r.PatientID)
	if r.Issuer != "" {
		p += " (" + printable(r.Issuer) + ")"
	}
	return p
}

func reasonOf(r api.AccessRequest) string {
	if r.Emergency {
		return r.Reason + " EMERGENCY"
	}
	return r.Reason
}

func stateOf(r api.AccessRequest) string {
	switch {
	case r.State == api.RequestDenied && r.DenyReason != "":
		return "denied: " + r.DenyReason
	case r.State == api.RequestUnsent:
		return "unsent (holder unreachable)"
	}
	return r.State
}

func reviewOf(r api.AccessRequest) string {
	switch {
	case r.Review != "":
		return r.Review + " (" + printable(r.ReviewedBy) + ")"
	case r.Emergency && r.DecidedBy == "system":
		return "TO REVIEW"
	}
	return ""
}

func approveCmd(g *globals) *cobra.Command {
	var expires string
	var studies []string
	c := &cobra.Command{
		Use:   "approve REQUEST [--expires 72h] [--study UID…]",
		Short: "Approve a partner's access request: a grant to the requesting user",
		Long: `Approve a partner's pending access request. The grant names the requesting user
at the partner and covers the patient's studies held here, now and later, or
only the studies listed with --study (repeatable), which must be the
patient's. It lasts --expires (default exchange.default_grant_ttl); its
manifests are sent as for any grant.`,
		Args: exactArgs(1, "the request's ID (or its first 8 or more digits)"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			r, err := cl.ApproveRequest(c.Context(), args[0], api.ApproveRequest{Expires: expires, StudyUIDs: studies})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r)
			}
			fmt.Printf("approved request %s of %s: grant %s until %s; manifests queued\n", r.RequestID[:12],
				partnerName(*r.Requester), r.GrantID, fmtTime(*r.Expires))
			return nil
		},
	}
	c.Flags().StringVar(&expires, "expires", "", "how long the grant lasts (72h, 3d); default exchange.default_grant_ttl")
	c.Flags().StringSliceVar(&studies, "study", nil, "grant only this study of the patient (Study Instance UID, repeatable)")
	addJSON(c, g)
	return c
}

func denyCmd(g *globals) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "deny REQUEST --reason CODE",
		Short: "Deny a partner's access request",
		Long:  "Deny a partner's pending access request with a reason code: " + strings.Join(api.DenyReasons, ", ") + ".",
		Args:  exactArgs(1, "the request's ID (or its first 8 or more digits)"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(api.DenyReasons, reason) {
				return usageError{fmt.Errorf("deny: --reason must be one of %s", strings.Join(api.DenyReasons, ", "))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			r, err := cl.DenyRequest(c.Context(), args[0], reason)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r)
			}
			fmt.Printf("denied request %s of %s (%s)\n", r.RequestID[:12], partnerName(*r.Requester), r.DenyReason)
			return nil
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why: "+strings.Join(api.DenyReasons, ", ")+" (required)")
	addJSON(c, g)
	return c
}

func reviewCmd(g *globals) *cobra.Command {
	var outcome string
	c := &cobra.Command{
		Use:   "review REQUEST --outcome justified|not-justified",
		Short: "Record the review of an emergency (break-glass) access",
		Long: `Record the review of an emergency access a partner was granted at once. The
outcome is audited; if the access was not justified, also revoke its grant
(pacsnet revoke GRANT --reason policy) and take it up with the partner.`,
		Args: exactArgs(1, "the request's ID (or its first 8 or more digits)"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(api.ReviewOutcomes, outcome) {
				return usageError{fmt.Errorf("review: --outcome must be one of %s", strings.Join(api.ReviewOutcomes, ", "))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			r, err := cl.ReviewRequest(c.Context(), args[0], outcome)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r)
			}
			fmt.Printf("reviewed emergency access %s of %s: %s\n", r.RequestID[:12], partnerName(*r.Requester), r.Review)
			return nil
		},
	}
	c.Flags().StringVar(&outcome, "outcome", "", "justified or not-justified (required)")
	addJSON(c, g)
	return c
}

func searchCmd(g *globals) *cobra.Command {
	var q api.PatientSearch
	var partner string
	var all bool
	c := &cobra.Command{
		Use:   "search --patient-id ID [--issuer I] [--birth-date YYYYMMDD] [--partner NAME | --all]",
		Short: "Search partner facilities for a patient's studies",
		Long: `Search partner facilities for a patient's studies (federated patient search).
Each partner is asked with a signed query; one whose policy lets this facility
search it (its requests.query_partners) answers with the patient's studies:
date, modalities, description, number of images and Study Instance UID,
nothing else. A partner that does not, and one that holds nothing of the
patient, answer the same: nothing. Studies a partner already shared with us
say so (fetch them); for the others, ask with pacsnet request.
--birth-date narrows the match to studies with that birth date.
Every query is audited here and at the partner, without the patient.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if q.PatientID == "" {
				return usageError{errors.New("search: --patient-id is required")}
			}
			if partner != "" && all {
				return usageError{errors.New("search: --partner or --all, not both")}
			}
			if partner != "" {
				q.Partners = []string{partner}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			res, err := cl.Search(c.Context(), q)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(res)
			}
			tw := table("PARTNER", "DATE", "MODALITY", "DESCRIPTION", "IMAGES", "STUDY", "HERE")
			n := 0
			for _, r := range res {
				if r.Error != "" {
					tw.row(partnerName(r.Holder), "-", "-", "not asked: "+printable(r.Error), "", "", "")
					continue
				}
				for _, s := range r.Studies {
					n++
					here := "pacsnet request"
					if s.Shared != "" {
						here = "shared: " + s.Shared
					}
					tw.row(partnerName(r.Holder), s.StudyDate, strings.Join(s.Modalities, ","), printable(s.Description), s.Instances, s.StudyUID, here)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n == 0 {
				fmt.Println("no studies found (a partner that does not let us search it answers the same)")
			}
			return nil
		},
	}
	c.Flags().StringVar(&q.PatientID, "patient-id", "", "the patient's ID (required)")
	c.Flags().StringVar(&q.Issuer, "issuer", "", "the Issuer of Patient ID")
	c.Flags().StringVar(&q.BirthDate, "birth-date", "", "only studies with this birth date (YYYYMMDD)")
	c.Flags().StringVar(&partner, "partner", "", "ask only this partner (name or peer ID)")
	c.Flags().BoolVar(&all, "all", false, "ask every partner (the default)")
	addJSON(c, g)
	return c
}

func eraseNoteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "erase-note REQUEST",
		Short: "Erase the free-text note of a partner's access request",
		Long: `Erase the free-text note a partner's clinician wrote with an access request
(it may name the patient), and the signed copy of the request that holds it.
The request, its decision, its audit entries and the SHA-256 of the signed
request stay. Audited as request-note-erased.`,
		Args: exactArgs(1, "the request's ID (or its first 8 or more digits)"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			r, err := cl.EraseRequestNote(c.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(r)
			}
			fmt.Printf("erased the note of request %s of %s\n", r.RequestID[:12], partnerName(*r.Requester))
			return nil
		},
	}
	addJSON(c, g)
	return c
}
