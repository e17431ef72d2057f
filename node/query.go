package node

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pacsnet/pacsnet/dicomio/dimse"
)

// Query/Retrieve levels (0008,0052).
const (
	levelPatient = iota
	levelStudy
	levelSeries
	levelImage
)

var levelNames = map[string]int{"PATIENT": levelPatient, "STUDY": levelStudy, "SERIES": levelSeries, "IMAGE": levelImage}

// Attributes the query room reads or writes outside the key table.
const (
	tagSpecificCharset  = 0x00080005
	tagQRLevel          = 0x00080052
	tagRetrieveAE       = 0x00080054
	tagAvailability     = 0x00080056
	tagFailedSOPList    = 0x00080058
	tagStudyUID         = 0x0020000D
	tagSeriesUID        = 0x0020000E
	tagSOPInstanceUID   = 0x00080018
	availabilityOnline  = "ONLINE"
	availabilityNearLn  = "NEARLINE"
	charsetUTF8         = "ISO_IR 192"
	charsetLatin1       = "ISO_IR 100"
	maxQueryRowsPerFind = 100000
)

// qrow is one candidate answer: a study (local or a partner's not yet
// fetched), and at SERIES/IMAGE level one of its series or instances.
type qrow struct {
	study    StudyInfo
	avail    string
	nInst    int
	insts    func() []InstanceInfo // the study's instances, read when needed
	nSer     func() int            // the study's number of series
	series   *InstanceInfo         // SERIES level: the series' first instance
	nSeries  int                   // SERIES level: the series' instances
	inst     *InstanceInfo         // IMAGE level
	patients *patientAgg           // PATIENT level
}

type patientAgg struct {
	studies, instances int
	rows               []*qrow
}

// qkey is a matching and return key the query room supports (PS3.4
// C.6.1.1 / C.6.2.1).
type qkey struct {
	tag   uint32
	vr    string
	level int
	get   func(r *qrow) []string
}

func one(s string) []string { return []string{s} }

func itoa0(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func countSeries(insts []InstanceInfo) int {
	seen := map[string]bool{}
	for _, in := range insts {
		seen[in.Series] = true
	}
	return len(seen)
}

var queryKeys = []qkey{
	{0x00100010, "PN", levelPatient, func(r *qrow) []string { return one(r.study.PatientName) }},
	{0x00100020, "LO", levelPatient, func(r *qrow) []string { return one(r.study.PatientID) }},
	{0x00100021, "LO", levelPatient, func(r *qrow) []string { return one(r.study.IssuerOfPatientID) }},
	{0x00100030, "DA", levelPatient, func(r *qrow) []string { return one(r.study.PatientBirthDate) }},
	{0x00100040, "CS", levelPatient, func(r *qrow) []string { return one(r.study.PatientSex) }},
	{0x00201200, "IS", levelPatient, func(r *qrow) []string { return one(strconv.Itoa(r.patients.studies)) }},
	{0x00201202, "IS", levelPatient, func(r *qrow) []string {
		n := 0
		for _, s := range r.patients.rows {
			n += s.nSer()
		}
		return one(strconv.Itoa(n))
	}},
	{0x00201204, "IS", levelPatient, func(r *qrow) []string { return one(strconv.Itoa(r.patients.instances)) }},
	{0x00080020, "DA", levelStudy, func(r *qrow) []string { return one(r.study.StudyDate) }},
	{0x00080030, "TM", levelStudy, func(r *qrow) []string { return one(r.study.StudyTime) }},
	{0x00080050, "SH", levelStudy, func(r *qrow) []string { return one(r.study.AccessionNumber) }},
	{0x00080061, "CS", levelStudy, func(r *qrow) []string { return r.study.Modalities }},
	{0x00081030, "LO", levelStudy, func(r *qrow) []string { return one(r.study.Description) }},
	{0x0020000D, "UI", levelStudy, func(r *qrow) []string { return one(r.study.UID) }},
	{0x00200010, "SH", levelStudy, func(r *qrow) []string { return one(r.study.StudyID) }},
	{0x00201206, "IS", levelStudy, func(r *qrow) []string { return one(strconv.Itoa(r.nSer())) }},
	{0x00201208, "IS", levelStudy, func(r *qrow) []string { return one(strconv.Itoa(r.nInst)) }},
	{0x00080060, "CS", levelSeries, func(r *qrow) []string { return one(r.series.Modality) }},
	{0x0008103E, "LO", levelSeries, func(r *qrow) []string { return one(r.series.SeriesDescription) }},
	{0x0020000E, "UI", levelSeries, func(r *qrow) []string { return one(r.series.Series) }},
	{0x00200011, "IS", levelSeries, func(r *qrow) []string { return one(itoa0(r.series.SeriesNumber)) }},
	{0x00201209, "IS", levelSeries, func(r *qrow) []string { return one(strconv.Itoa(r.nSeries)) }},
	{0x00080016, "UI", levelImage, func(r *qrow) []string { return one(r.inst.SOPClassUID) }},
	{0x00080018, "UI", levelImage, func(r *qrow) []string { return one(r.inst.SOPInstanceUID) }},
	{0x00200013, "IS", levelImage, func(r *qrow) []string { return one(itoa0(r.inst.InstanceNumber)) }},
}

// errQuery is an identifier the query room cannot answer: its status and
// an Error Comment (no patient data: the comment names attributes only).
type errQuery struct {
	status  uint16
	comment string
}

func (e *errQuery) Error() string { return e.comment }

// queryRoom answers C-FIND (and selects what C-MOVE and C-GET send) over
// the local archive and the studies partners shared with this facility.
type queryRoom struct {
	archive *archive
	inbox   *inbox
	aet     string

	// series remembers each local study's series count with the
	// instance count it was computed at, so that Number of Study Related
	// Series reads a study's instance index once, not at every query.
	mu     sync.Mutex
	series map[string][2]int
}

// seriesOf is a local study's number of series.
func (qr *queryRoom) seriesOf(uid string, instances int, read func() []InstanceInfo) int {
	qr.mu.Lock()
	m, ok := qr.series[uid]
	qr.mu.Unlock()
	if ok && m[0] == instances {
		return m[1]
	}
	n := countSeries(read())
	qr.mu.Lock()
	if qr.series == nil || len(qr.series) > 1<<20 {
		qr.series = map[string][2]int{}
	}
	qr.series[uid] = [2]int{instances, n}
	qr.mu.Unlock()
	return n
}

// query is a decoded identifier.
type query struct {
	level       int
	ident       dimse.Dataset
	unsupported bool // it asks for keys this room does not support
	latin1      bool
	reader      reader // who asks: a user (DICOMweb), or the zero reader (a DICOM AE)
}

// parseQuery checks an identifier for a Q/R information model (Patient
// Root or Study Root: PATIENT level only in the former).
func parseQuery(ident dimse.Dataset, patientRoot bool) (*query, error) {
	el := ident.Find(tagQRLevel)
	if el == nil {
		return nil, &errQuery{dimse.StatusIdentifierMismatch, "Query/Retrieve Level (0008,0052) is missing"}
	}
	lv, ok := levelNames[ident.String(tagQRLevel)]
	if !ok {
		return nil, &errQuery{dimse.StatusIdentifierMismatch, "Query/Retrieve Level (0008,0052) is not PATIENT, STUDY, SERIES or IMAGE"}
	}
	if lv == levelPatient && !patientRoot {
		return nil, &errQuery{dimse.StatusIdentifierMismatch, "PATIENT level is not part of the Study Root model"}
	}
	q := &query{level: lv, ident: ident}
	switch cs := ident.String(tagSpecificCharset); cs {
	case "", "ISO_IR 6", charsetUTF8:
	case charsetLatin1:
		q.latin1 = true
	default:
		return nil, &errQuery{dimse.StatusCannotUnderstand, "Specific Character Set (0008,0005) not supported; use ISO_IR 192 or ISO_IR 100"}
	}
	for _, e := range ident {
		switch {
		case e.Tag == tagSpecificCharset || e.Tag == tagQRLevel || e.Tag == tagRetrieveAE || e.Tag == tagAvailability:
		case e.Tag&0xFFFF == 0: // group lengths
		default:
			k := keyFor(e.Tag)
			if k == nil || k.level > lv {
				q.unsupported = true
			}
		}
	}
	return q, nil
}

func keyFor(tag uint32) *qkey {
	for i := range queryKeys {
		if queryKeys[i].tag == tag {
			return &queryKeys[i]
		}
	}
	return nil
}

// value is a key's value in the identifier, in UTF-8.
func (q *query) value(tag uint32) string {
	v := q.ident.String(tag)
	if q.latin1 {
		v = latin1ToUTF8(v)
	}
	return v
}

func latin1ToUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// matches applies the identifier's keys of the row's levels.
func (q *query) matches(r *qrow, upTo int) bool {
	for _, k := range queryKeys {
		if k.level > upTo || k.level > q.level || !q.ident.Has(k.tag) {
			continue
		}
		// Counts are return keys only (PS3.4 C.3.4).
		if k.vr == "IS" && k.tag>>8 == 0x002012 {
			continue
		}
		key := q.value(k.tag)
		if key == "" || key == "*" {
			continue
		}
		if !dimse.Match(k.vr, key, k.get(r)) {
			return false
		}
	}
	if q.ident.Has(tagAvailability) && q.level >= levelStudy {
		if key := q.ident.String(tagAvailability); key != "" && !dimse.Match("CS", key, one(r.avail)) {
			return false
		}
	}
	return true
}

// answer builds the identifier of a C-FIND response: every key asked for
// (supported ones with their value), the level, Retrieve AE Title and
// Instance Availability, and ISO_IR 192 when a value is not ASCII.
func (q *query) answer(r *qrow, aet string) dimse.Dataset {
	var out dimse.Dataset
	ascii := true
	for _, e := range q.ident {
		if e.Tag == tagSpecificCharset || e.Tag&0xFFFF == 0 {
			continue
		}
		k := keyFor(e.Tag)
		if k == nil || k.level > q.level {
			out = append(out, dimse.Element{Tag: e.Tag, VR: e.VR})
			continue
		}
		v := strings.Join(k.get(r), `\`)
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				ascii = false
			}
		}
		out = append(out, dimse.Element{Tag: e.Tag, VR: k.vr, Value: []byte(v)})
	}
	out.Set(tagQRLevel, "CS", map[int]string{levelPatient: "PATIENT", levelStudy: "STUDY", levelSeries: "SERIES", levelImage: "IMAGE"}[q.level])
	out.Set(tagRetrieveAE, "AE", aet)
	if q.level >= levelStudy {
		out.Set(tagAvailability, "CS", r.avail)
	}
	if !ascii {
		out.Set(tagSpecificCharset, "CS", charsetUTF8)
	}
	slices.SortFunc(out, func(a, b dimse.Element) int { return int(int64(a.Tag) - int64(b.Tag)) })
	return out
}

// studies lists the candidate studies: those of the local archive
// (ONLINE) and those partners shared with us that are available and not
// yet fully fetched (NEARLINE; a partly fetched one is listed once, from
// its manifest).
func (qr *queryRoom) studies(rd reader) ([]*qrow, error) {
	local, err := qr.archive.Studies()
	if err != nil {
		return nil, err
	}
	shared, err := qr.inbox.store.SharedAll()
	if err != nil {
		return nil, err
	}
	list, err := qr.inbox.Shared()
	if err != nil {
		return nil, err
	}
	nearline := map[string]bool{}
	for _, s := range list {
		if s.State == SharedAvailable && !s.Fetched {
			nearline[s.Study.UID] = true
		}
	}
	var rows []*qrow
	for _, st := range local {
		if nearline[st.UID] || !rd.mayRead(st.Readers) {
			continue
		}
		uid := st.UID
		r := &qrow{study: st.StudyInfo, avail: availabilityOnline, nInst: st.Instances}
		var cache []InstanceInfo
		r.insts = func() []InstanceInfo {
			if cache == nil {
				cache, _ = qr.archive.Instances(uid)
			}
			return cache
		}
		n := st.Instances
		r.nSer = func() int { return qr.seriesOf(uid, n, r.insts) }
		rows = append(rows, r)
	}
	for _, s := range shared {
		uid := s.Manifest.Study.UID
		if !nearline[uid] || !rd.mayList(s.AllGrants()) {
			continue
		}
		delete(nearline, uid) // the first holder's manifest lists it
		insts := s.Manifest.Instances
		rows = append(rows, &qrow{study: s.Manifest.Study, avail: availabilityNearLn, nInst: len(insts),
			insts: func() []InstanceInfo { return insts }, nSer: func() int { return countSeries(insts) }})
	}
	return rows, nil
}

// Find returns the rows matching a query at its level.
func (qr *queryRoom) Find(q *query) ([]*qrow, error) {
	studies, err := qr.studies(q.reader)
	if err != nil {
		return nil, err
	}
	var rows []*qrow
	switch q.level {
	case levelPatient:
		byPatient := map[string]*qrow{}
		var order []string
		for _, s := range studies {
			k := s.study.PatientID + "\x00" + s.study.IssuerOfPatientID
			p := byPatient[k]
			if p == nil {
				p = &qrow{study: s.study, patients: &patientAgg{}}
				byPatient[k] = p
				order = append(order, k)
			}
			p.patients.studies++
			p.patients.instances += s.nInst
			p.patients.rows = append(p.patients.rows, s)
		}
		for _, k := range order {
			if p := byPatient[k]; q.matches(p, levelPatient) {
				rows = append(rows, p)
			}
		}
	case levelStudy:
		for _, s := range studies {
			if q.matches(s, levelStudy) {
				rows = append(rows, s)
			}
		}
	default:
		for _, s := range studies {
			if !q.matches(s, levelStudy) {
				continue
			}
			insts := s.insts()
			if q.level == levelSeries {
				idx := map[string]*qrow{}
				var order []string
				for i := range insts {
					in := &insts[i]
					sr := idx[in.Series]
					if sr == nil {
						sr = &qrow{study: s.study, avail: s.avail, nInst: s.nInst, insts: s.insts, nSer: s.nSer, series: in}
						idx[in.Series] = sr
						order = append(order, in.Series)
					}
					sr.nSeries++
				}
				for _, k := range order {
					if q.matches(idx[k], levelSeries) {
						rows = append(rows, idx[k])
					}
				}
				continue
			}
			for i := range insts {
				ir := &qrow{study: s.study, avail: s.avail, nInst: s.nInst, insts: s.insts, nSer: s.nSer, series: &insts[i], inst: &insts[i], nSeries: 1}
				if q.matches(ir, levelImage) {
					rows = append(rows, ir)
				}
			}
			if len(rows) > maxQueryRowsPerFind {
				return nil, &errQuery{dimse.StatusOutOfResources, "too many matches; narrow the query"}
			}
		}
	}
	return rows, nil
}

// errRetrieveKey is a C-MOVE/C-GET identifier without the unique key of
// its level: retrieving "everything" by accident is refused.
var errRetrieveKey = errors.New("retrieve: the unique key of the level is missing")

// Select returns the rows a C-MOVE or C-GET identifier names: the unique
// key of its level (Patient ID, Study, Series or SOP Instance UID) must be
// given.
func (qr *queryRoom) Select(q *query) ([]*qrow, error) {
	unique := map[int]uint32{levelPatient: 0x00100020, levelStudy: tagStudyUID, levelSeries: tagSeriesUID, levelImage: tagSOPInstanceUID}[q.level]
	if v := q.ident.String(unique); v == "" || strings.ContainsAny(v, "*?") {
		return nil, &errQuery{dimse.StatusIdentifierMismatch, "the unique key of the Query/Retrieve Level is missing"}
	}
	return qr.Find(q)
}
