package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/pacsnet/pacsnet/api"
)

// codeNotDICOM is the rejection code of a file that is not DICOM at all.
const codeNotDICOM = "not-dicom"

// importBar counts imported files on stderr.
func importBar(n int) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("importing"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

// worthALine reports whether a file gets its own line without --verbose:
// what was not stored, and what was accepted with warnings (the
// conformance statement promises them).
func worthALine(r api.ImportFileResult) bool {
	ok := r.Outcome == api.OutcomeStored || r.Outcome == api.OutcomeDuplicate
	return !ok || len(r.Warnings) > 0
}

// printImportLine prints one file's outcome and, under it, its warnings.
func printImportLine(r api.ImportFileResult) {
	line := fmt.Sprintf("%-9s %s", r.Outcome, r.Path)
	if r.Error != "" {
		line += ": " + r.Error
	}
	fmt.Println(printable(line))
	for _, w := range r.Warnings {
		fmt.Println("          warning: " + printable(w))
	}
}

// importSummary says what happened to the files in words, leaving out
// what did not happen: "214 files: 210 stored, 3 already present, 1 not a
// DICOM file".
func importSummary(results []api.ImportFileResult) string {
	var stored, present, conflict, notDICOM, rejected, failed int
	for _, r := range results {
		switch {
		case r.Outcome == api.OutcomeStored:
			stored++
		case r.Outcome == api.OutcomeDuplicate:
			present++
		case r.Outcome == api.OutcomeConflict:
			conflict++
		case r.Outcome == api.OutcomeRejected && r.Code == codeNotDICOM:
			notDICOM++
		case r.Outcome == api.OutcomeRejected:
			rejected++
		default:
			failed++
		}
	}
	var parts []string
	add := func(n int, one, many string) {
		if n == 1 {
			parts = append(parts, "1 "+one)
		} else if n > 1 {
			parts = append(parts, strconv.Itoa(n)+" "+many)
		}
	}
	add(stored, "stored", "stored")
	add(present, "already present", "already present")
	add(conflict, "conflict (another instance under the same UID)", "conflicts (other instances under the same UIDs)")
	add(notDICOM, "not a DICOM file", "not DICOM files")
	add(rejected, "rejected", "rejected")
	add(failed, "failed", "failed")
	if len(parts) == 0 {
		return files(len(results))
	}
	return files(len(results)) + ": " + strings.Join(parts, ", ")
}
