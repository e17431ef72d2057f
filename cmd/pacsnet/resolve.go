package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/api"
)

// Where a command looks up the study it is given: the local archive
// (grant, export) or the studies partners shared (fetch).
type studySource int

const (
	localStudies studySource = iota
	sharedStudies
)

// studyCandidate is a study a name could mean.
type studyCandidate struct {
	api.StudyAttributes
	from string // where it comes from, as listings show it
}

// resolveStudy turns what the user typed for a study into its Study
// Instance UID: the UID itself, a prefix of exactly one study's UID, or
// the accession number or patient ID of exactly one study. A name that
// matches several studies is an error listing them; a name that matches
// none is passed on unchanged, so the node says what it knows (not found,
// or a study to ask a partner for with fetch --from).
func resolveStudy(ctx context.Context, cl *api.Client, src studySource, name string) (string, error) {
	if name == "" {
		return name, nil
	}
	var cands []studyCandidate
	switch src {
	case localStudies:
		ss, err := cl.Studies(ctx)
		if err != nil {
			return "", err
		}
		for _, s := range ss {
			from := "(local)"
			if s.Origin != nil {
				from = partnerName(*s.Origin)
			}
			cands = append(cands, studyCandidate{s.StudyAttributes, from})
		}
	case sharedStudies:
		ss, err := cl.Shared(ctx)
		if err != nil {
			return "", err
		}
		for _, s := range ss {
			cands = append(cands, studyCandidate{s.StudyAttributes, partnerName(s.Issuer)})
		}
	}
	uid, matches := matchStudy(cands, name)
	if len(matches) <= 1 {
		return uid, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%q names %d studies; name one by more of its Study Instance UID:", printable(name), len(matches))
	for _, m := range matches {
		// Each value escaped apart: a newline in one must not forge a line.
		fmt.Fprintf(&b, "\n  %s  %s  %s  %s  %s  %s", printable(m.StudyUID), printable(orDash(personName(m.PatientName))),
			printable(orDash(m.PatientID)), printable(orDash(dicomDate(m.StudyDate))), printable(orDash(m.Description)), m.from)
	}
	return "", errors.New(b.String())
}

// matchStudy finds what name means among cands: an exact UID first, then
// UID prefixes, accession numbers and patient IDs. uid is the one study's
// UID, or name unchanged when none or several match (matches then lists
// them, one per study).
func matchStudy(cands []studyCandidate, name string) (uid string, matches []studyCandidate) {
	for _, c := range cands {
		if c.StudyUID == name {
			return name, []studyCandidate{c}
		}
	}
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c.StudyUID] {
			continue // the same study listed twice (an own copy and a partner's)
		}
		if strings.HasPrefix(c.StudyUID, name) || c.AccessionNumber != "" && c.AccessionNumber == name || c.PatientID != "" && c.PatientID == name {
			seen[c.StudyUID] = true
			matches = append(matches, c)
		}
	}
	slices.SortFunc(matches, func(a, b studyCandidate) int { return strings.Compare(a.StudyUID, b.StudyUID) })
	if len(matches) == 1 {
		return matches[0].StudyUID, matches
	}
	return name, matches
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// studyFlagHelp is the help of every --study flag.
const studyFlagHelp = "the study: its Study Instance UID, a prefix of it, or its accession number or patient ID, when that names one study (required)"

// addWide adds the study listings' --wide flag.
func addWide(c *cobra.Command, wide *bool) {
	c.Flags().BoolVar(wide, "wide", false, "whole UIDs, accession numbers and values uncut (wider than 100 columns)")
}
