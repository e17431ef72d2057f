package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/api"
)

// narrowWidth is the terminal width the study listings fit by default; an
// admin's terminal is at least this wide, and --wide lifts the limit.
const narrowWidth = 100

// column of a fitTable. A flexible column gives up width, down to min,
// when a row would not fit; its values are then cut with "…".
type column struct {
	head string
	flex bool
	min  int
	last bool // a flexible column that gives up width only when the others are at their minimum
}

// fitTable is a listing whose rows fit a width: the study listings, whose
// patient names and descriptions can be of any length. Cells are made
// printable before they are measured and cut, so that an escape shown as
// \x1b is never cut into a raw control character.
type fitTable struct {
	cols []column
	rows [][]string
}

func (t *fitTable) row(cells ...string) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = printable(c)
	}
	t.rows = append(t.rows, r)
}

// write prints the table with two spaces between columns, within width
// runes per line (0: as wide as the values).
func (t *fitTable) write(w io.Writer, width int) error {
	widths := make([]int, len(t.cols))
	for i, c := range t.cols {
		widths[i] = utf8.RuneCountInString(c.head)
	}
	for _, r := range t.rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	if width > 0 {
		// Take one rune at a time from the widest flexible column until
		// the line fits or every flexible column is at its minimum.
		for total(widths) > width {
			widest := -1
			for _, last := range []bool{false, true} {
				for i, c := range t.cols {
					if c.flex && c.last == last && widths[i] > max(c.min, utf8.RuneCountInString(c.head)) && (widest < 0 || widths[i] > widths[widest]) {
						widest = i
					}
				}
				if widest >= 0 {
					break
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.Reset()
		for i, c := range cells {
			c = cut(c, widths[i])
			if i == len(cells)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	heads := make([]string, len(t.cols))
	for i, c := range t.cols {
		heads[i] = c.head
	}
	line(heads)
	for _, r := range t.rows {
		line(r)
	}
	return nil
}

func total(widths []int) int {
	n := 2 * (len(widths) - 1)
	for _, w := range widths {
		n += w
	}
	return n
}

// cut shortens s to n runes, its last one "…" when anything was cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n < 1 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// personName shows a DICOM PN value as people write it: the alphabetic
// group's family name, a comma and the other components ("DOE^JOHN" →
// "DOE, JOHN").
func personName(pn string) string {
	alpha, _, _ := strings.Cut(pn, "=")
	var parts []string
	for _, p := range strings.Split(alpha, "^") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	if !strings.HasPrefix(alpha, "^") && len(parts) > 1 {
		return parts[0] + ", " + strings.Join(parts[1:], " ")
	}
	return strings.Join(parts, " ")
}

// dicomDate shows a DICOM DA value (YYYYMMDD) as 2006-01-02; anything
// else as it is.
func dicomDate(da string) string {
	if len(da) != 8 {
		return da
	}
	for _, c := range []byte(da) {
		if c < '0' || c > '9' {
			return da
		}
	}
	return da[:4] + "-" + da[4:6] + "-" + da[6:]
}

// shortUIDs returns, for each UID, its shortest prefix of at least
// minUIDPrefix characters that no other UID in the list starts with, so
// that what a listing shows can be typed back as --study. A prefix longer
// than maxUIDPrefix is shown cut (--wide shows the whole UID).
func shortUIDs(uids []string) map[string]string {
	const minUIDPrefix, maxUIDPrefix = 12, 24
	out := map[string]string{}
	for _, u := range uids {
		n := min(minUIDPrefix, len(u))
		for ; n < len(u); n++ {
			unique := true
			for _, o := range uids {
				if o != u && strings.HasPrefix(o, u[:n]) {
					unique = false
					break
				}
			}
			if unique {
				break
			}
		}
		switch {
		case len(u) <= maxUIDPrefix && n >= len(u):
			out[u] = u
		case n >= maxUIDPrefix:
			out[u] = u[:maxUIDPrefix-1] + "…"
		default:
			out[u] = u[:n] + "…"
		}
	}
	return out
}

// printStudies is the human listing of `pacsnet studies`: narrow (a
// unique UID prefix, cut names and descriptions) unless wide.
func printStudies(w io.Writer, ss []api.Study, wide bool) error {
	uids := make([]string, len(ss))
	for i, s := range ss {
		uids[i] = s.StudyUID
	}
	short := shortUIDs(uids)
	t := &fitTable{cols: []column{studyColumn, {head: "PATIENT", flex: true, min: 8}, {head: "PATIENT ID", flex: true, min: 10},
		{head: "DATE"}, {head: "MOD", flex: true, min: 3}, {head: "DESCRIPTION", flex: true, min: 11}, {head: "INST"},
		{head: "MB"}, {head: "FROM", flex: true, min: 7}}}
	if wide {
		t.cols = []column{{head: "STUDY UID"}, {head: "PATIENT"}, {head: "PATIENT ID"}, {head: "ACCESSION"}, {head: "DATE"},
			{head: "MODALITIES"}, {head: "DESCRIPTION"}, {head: "INSTANCES"}, {head: "MB"}, {head: "FROM"}}
	}
	for _, s := range ss {
		from := "(local)"
		if s.Origin != nil {
			from = partnerName(*s.Origin)
		}
		count := fmt.Sprint(s.Instances)
		if !s.Complete {
			count = fmt.Sprintf("%d/%d", s.Instances, s.Expected)
			if wide {
				count += " partial"
			}
		}
		cells := []string{short[s.StudyUID], personName(s.PatientName), s.PatientID, dicomDate(s.StudyDate),
			strings.Join(s.Modalities, ","), s.Description, count, fmt.Sprintf("%.1f", float64(s.Bytes)/1e6), from}
		if wide {
			cells[0] = s.StudyUID
			cells = slices.Insert(cells, 3, s.AccessionNumber)
		}
		t.row(cells...)
	}
	return t.write(w, widthFor(wide))
}

// printShared is the human listing of `pacsnet shared`, narrow unless
// wide. Narrow, STATE says "fetched" for an available study held whole
// here, and expiry times are shown to the minute.
func printShared(w io.Writer, ss []api.SharedStudy, wide bool) error {
	uids := make([]string, len(ss))
	for i, s := range ss {
		uids[i] = s.StudyUID
	}
	short := shortUIDs(uids)
	t := &fitTable{cols: []column{studyColumn, {head: "PATIENT", flex: true, min: 8}, {head: "DATE"},
		{head: "MOD", flex: true, min: 3}, {head: "DESCRIPTION", flex: true, min: 11}, {head: "FROM", flex: true, min: 7},
		{head: "STATE"}, {head: "INST"}, {head: "EXPIRES"}}}
	if wide {
		t.cols = []column{{head: "STUDY UID"}, {head: "PATIENT"}, {head: "PATIENT ID"}, {head: "ACCESSION"}, {head: "DATE"},
			{head: "MODALITIES"}, {head: "DESCRIPTION"}, {head: "FROM"}, {head: "STATE"}, {head: "INSTANCES"}, {head: "MB"},
			{head: "EXPIRES"}, {head: "FETCHED"}}
	}
	for _, s := range ss {
		if wide {
			t.row(s.StudyUID, personName(s.PatientName), s.PatientID, s.AccessionNumber, dicomDate(s.StudyDate),
				strings.Join(s.Modalities, ","), s.Description, partnerName(s.Issuer), s.State, fmt.Sprint(s.Instances),
				fmt.Sprintf("%.1f", float64(s.Bytes)/1e6), fmtTime(s.Expires), fmt.Sprint(s.Fetched))
			continue
		}
		state := s.State
		if state == api.SharedAvailable && s.Fetched {
			state = "fetched"
		}
		t.row(short[s.StudyUID], personName(s.PatientName), dicomDate(s.StudyDate), strings.Join(s.Modalities, ","),
			s.Description, partnerName(s.Issuer), state, fmt.Sprint(s.Instances), fmtShortTime(s.Expires))
	}
	return t.write(w, widthFor(wide))
}

// studyColumn shows the UID prefixes of shortUIDs, cut further (still a
// prefix) only when nothing else can give.
var studyColumn = column{head: "STUDY", flex: true, min: 16, last: true}

func widthFor(wide bool) int {
	if wide {
		return 0
	}
	return narrowWidth
}

// fmtShortTime is fmtTime to the minute, without the year.
func fmtShortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("01-02 15:04 MST")
}
