package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// printStatus is the human form of `pacsnet status`.
func printStatus(w io.Writer, st api.Status) error {
	dicom := st.DICOM
	if dicom == "" {
		dicom = "(not enabled)"
	}
	health := st.Health
	for _, p := range st.Problems {
		health += "\n          " + printable(p)
	}
	partners := fmt.Sprint(st.Partners)
	if st.Partners > 0 {
		partners += fmt.Sprintf(" (%d online)", st.PartnersOnline)
	}
	fmt.Fprintf(w, "%s (AE %s)\nhealth    %s\npeer ID   %s\napi       http://%s\np2p       %s\ndicom     %s\n",
		printable(st.Name), printable(st.AETitle), health, st.PeerID, st.HTTP, strings.Join(st.P2P, " "), dicom)
	fmt.Fprintf(w, "archive   %s on disk; %s free of %s\npartners  %s\noutbox    %d\nfetches   %d\n",
		fmtBytes(uint64(max(st.ArchiveBytes, 0))), fmtBytes(st.DiskFree), fmtBytes(st.DiskTotal), partners, st.Outbox, len(st.Fetches))
	if st.ForwardTo != "" || st.ForwardsPending > 0 {
		fwd := fmt.Sprintf("%d waiting to be sent to %s", st.ForwardsPending, printable(st.ForwardTo))
		if st.ForwardLastError != "" {
			fwd += " (last error: " + printable(st.ForwardLastError) + ")"
		}
		fmt.Fprintf(w, "forwards  %s\n", fwd)
	}
	if st.RequestsPending > 0 || st.EmergencyToReview > 0 {
		fmt.Fprintf(w, "requests  %d waiting for a decision, %d emergency accesses to review (pacsnet requests)\n",
			st.RequestsPending, st.EmergencyToReview)
	}
	if len(st.PartnerStates) > 0 {
		fmt.Fprintln(w)
		tw := tableTo(w, "PARTNER", "REACHABLE", "LAST SEEN", "OUTBOX", "LAST ERROR")
		for _, p := range st.PartnerStates {
			tw.row(partnerName(p.PartnerRef), reachable(p.Online), lastSeen(p.Online, p.LastSeen), p.Outbox, p.LastError)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Fetches) > 0 {
		fmt.Fprintln(w)
		tw := tableTo(w, "FETCHING STUDY", "FROM", "STATE", "INSTANCES", "MB", "STARTED")
		for _, f := range st.Fetches {
			tw.row(f.StudyUID, partnerName(f.Holder), f.State, fmt.Sprintf("%d/%d", f.InstancesDone, f.Instances),
				fmt.Sprintf("%.1f/%.1f", float64(f.BytesDone)/1e6, float64(f.Bytes)/1e6), fmtTime(f.Started))
		}
		return tw.Flush()
	}
	return nil
}

func reachable(online bool) string {
	if online {
		return "online"
	}
	return "offline"
}

// lastSeen says when an offline partner was last connected.
func lastSeen(online bool, t time.Time) string {
	switch {
	case online:
		return "now"
	case t.IsZero():
		return "not since start"
	}
	return fmtTime(t)
}

// fmtBytes shows a size in decimal units, as disks are sold.
func fmtBytes(b uint64) string {
	switch {
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", float64(b)/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}
