package node

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// findscu runs DCMTK's findscu against a node (-S study root, -P patient
// root) and returns the answers' identifiers, in the order received.
func findscu(t *testing.T, n *tnode, model string, keys ...string) []dimse.Dataset {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	args := []string{"-aet", "WORKSTATION", "-aec", n.cfg.AETitle, model, "-X", "-od", dir}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	out, err := exec.Command("findscu", append(args, host, port)...).CombinedOutput()
	if err != nil {
		t.Fatalf("findscu %v: %v\n%s", keys, err, out)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "rsp*.dcm"))
	sort.Strings(names)
	var got []dimse.Dataset
	for _, name := range names {
		b, _ := os.ReadFile(name)
		body, err := dicomio.DataSetOf(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ds, err := dimse.DecodeDataset(body, dicomio.ExplicitVRLittleEndian)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got = append(got, ds)
	}
	return got
}

// storescp starts DCMTK's storescp on a free loopback port writing into a
// temporary folder; it is stopped by PID when the test ends.
func storescp(t *testing.T, aet string, extra ...string) (port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	storescpAt(t, aet, port, dir, extra...)
	return port, dir
}

// receivedDataSets reads the files a storescp or getscu wrote: SOP
// Instance UID → data set bytes (without meta).
func receivedDataSets(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		ds, err := dicomio.DataSetOf(b)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			return nil
		}
		got[sopOf(t, ds)] = ds
		return nil
	})
	return got
}

func sopOf(t *testing.T, ds []byte) string {
	t.Helper()
	// The SOP Instance UID is in group 0008, well before the pixels.
	head := ds[:min(len(ds), 4096)]
	for i := 0; i+8 <= len(head); i++ {
		if head[i] == 0x08 && head[i+1] == 0 && head[i+2] == 0x18 && head[i+3] == 0 && string(head[i+4:i+6]) == "UI" {
			n := int(head[i+6]) | int(head[i+7])<<8
			return strings.TrimRight(string(head[i+8:i+8+n]), "\x00 ")
		}
	}
	t.Fatal("no SOP Instance UID in a received data set")
	return ""
}

// wantDataSets checks that got holds exactly files' data sets.
func wantDataSets(t *testing.T, got map[string][]byte, files []synth.File) {
	t.Helper()
	if len(got) != len(files) {
		t.Errorf("received %d instances, want %d", len(got), len(files))
	}
	for _, f := range files {
		want, _ := dicomio.DataSetOf(f.Data)
		sop := sopOf(t, want)
		if !bytes.Equal(got[sop], want) {
			t.Errorf("%s: the received data set differs from the stored one (%d vs %d bytes)", f.Name, len(got[sop]), len(want))
		}
	}
}

func qrNode(t *testing.T, destPort int) *tnode {
	return newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "WORKSTATION", Host: "127.0.0.1", Port: 104}}
		if destPort != 0 {
			c.DICOM.AEs = append(c.DICOM.AEs, AEConfig{Title: "DEST", Host: "127.0.0.1", Port: destPort})
		}
	}})
}

// A workstation queries the node with findscu at every level of both
// information models, with each matching kind, and gets the return keys
// it asks for.
func TestDICOMFindscu(t *testing.T) {
	needTool(t, "findscu")
	n := qrNode(t, 0)
	s1, f1 := ctStudy(t, 31, 3, "SMITH^JOHN")
	s2, f2 := ctStudy(t, 32, 2, "DOE^JANE")
	importFiles(t, n, f1)
	importFiles(t, n, f2)
	studies, _ := n.Studies()
	var st1 Study
	for _, s := range studies {
		if s.UID == s1 {
			st1 = s
		}
	}
	uids := func(dss []dimse.Dataset, tag uint32) []string {
		var out []string
		for _, ds := range dss {
			out = append(out, ds.String(tag))
		}
		sort.Strings(out)
		return out
	}
	two := []string{s1, s2}
	sort.Strings(two)
	studyKeys := []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID", "NumberOfStudyRelatedInstances",
		"NumberOfStudyRelatedSeries", "ModalitiesInStudy", "StudyDate", "PatientName", "InstanceAvailability", "RetrieveAETitle"}
	for _, tc := range []struct {
		name string
		keys []string
		want []string
	}{
		{"universal", nil, two},
		{"single value", []string{"PatientID=" + st1.PatientID}, []string{s1}},
		{"single value PN case-insensitive", []string{"PatientName=smith^john"}, []string{s1}},
		{"wildcard", []string{"PatientName=DOE*"}, []string{s2}},
		{"wildcard ?", []string{"PatientName=SMITH^J?HN"}, []string{s1}},
		{"UID list", []string{`StudyInstanceUID=` + s1 + `\` + s2}, two},
		{"date range", []string{"StudyDate=" + st1.StudyDate + "-"}, matchDates(studies, st1.StudyDate, "")},
		{"date range upper", []string{"StudyDate=-" + st1.StudyDate}, matchDates(studies, "", st1.StudyDate)},
		{"time range", []string{"StudyTime=000000-235959"}, two},
		{"no match", []string{"PatientName=NOBODY"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := append(append([]string{}, studyKeys...), tc.keys...)
			got := findscu(t, n, "-S", keys...)
			if g := uids(got, tagStudyUID); strings.Join(g, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got studies %v, want %v", g, tc.want)
			}
		})
	}
	got := findscu(t, n, "-S", append(studyKeys, "StudyInstanceUID="+s1)...)
	if len(got) != 1 {
		t.Fatalf("%d answers", len(got))
	}
	a := got[0]
	for tag, want := range map[uint32]string{0x00201208: "3", 0x00201206: "1", 0x00080061: "CT", 0x00100010: "SMITH^JOHN",
		tagAvailability: "ONLINE", tagRetrieveAE: n.cfg.AETitle} {
		if v := a.String(tag); v != want {
			t.Errorf("(%04X,%04X) = %q, want %q", tag>>16, tag&0xFFFF, v, want)
		}
	}
	// Patient root, PATIENT level.
	got = findscu(t, n, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=SMITH*", "PatientID", "NumberOfPatientRelatedStudies")
	if len(got) != 1 || got[0].String(0x00100020) != st1.PatientID || got[0].String(0x00201200) != "1" {
		t.Fatalf("patient level: %v", got)
	}
	// SERIES and IMAGE levels.
	insts, _ := n.Instances(s1)
	got = findscu(t, n, "-S", "QueryRetrieveLevel=SERIES", "StudyInstanceUID="+s1, "SeriesInstanceUID", "Modality=CT",
		"SeriesNumber", "NumberOfSeriesRelatedInstances")
	if len(got) != 1 || got[0].String(tagSeriesUID) != insts[0].Series || got[0].String(0x00201209) != "3" {
		t.Fatalf("series level: %v", got)
	}
	got = findscu(t, n, "-S", "QueryRetrieveLevel=IMAGE", "StudyInstanceUID="+s1, "SeriesInstanceUID="+insts[0].Series,
		"SOPInstanceUID", "SOPClassUID", "InstanceNumber=2")
	if len(got) != 1 || got[0].String(tagSOPInstanceUID) != insts[1].SOPInstanceUID {
		t.Fatalf("image level: %v", got)
	}
	// A key that is not supported comes back empty (pending warning) and
	// matches nothing away; a missing level is refused.
	got = findscu(t, n, "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+s1, "ReferringPhysicianName")
	if len(got) != 1 || !got[0].Has(0x00080090) {
		t.Fatalf("unsupported key: %v", got)
	}
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	out, _ := exec.Command("findscu", "-aet", "WORKSTATION", "-aec", n.cfg.AETitle, "-v", "-S", "-k", "PatientName=X", host, port).CombinedOutput()
	if !strings.Contains(string(out), "Final Find Response (Error: DataSetDoesNotMatchSOPClass)") {
		t.Errorf("findscu without a level: want A900\n%s", out)
	}
	requireAudit(t, n, consent.Entry{Action: consent.ActQuery, Actor: "ae:WORKSTATION", Reason: "c-find:study"})
}

func matchDates(studies []Study, lo, hi string) []string {
	var out []string
	for _, s := range studies {
		if (lo == "" || s.StudyDate >= lo) && (hi == "" || s.StudyDate <= hi) {
			out = append(out, s.UID)
		}
	}
	sort.Strings(out)
	return out
}

// movescu asks the node to send a study to storescp, which receives the
// exact data sets; an unknown destination is refused (A801).
func TestDICOMMoveToStorescp(t *testing.T) {
	needTool(t, "movescu", "storescp")
	destPort, dir := storescp(t, "DEST")
	n := qrNode(t, destPort)
	study, files := ctStudy(t, 41, 4, "MOVE^ME")
	importFiles(t, n, files)
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	move := func(dest string, keys ...string) string {
		args := []string{"-aet", "WORKSTATION", "-aec", n.cfg.AETitle, "-aem", dest, "-S"}
		for _, k := range keys {
			args = append(args, "-k", k)
		}
		out, _ := exec.Command("movescu", append(args, host, port)...).CombinedOutput()
		return string(out)
	}
	out := move("DEST", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+study)
	wantDataSets(t, receivedDataSets(t, dir), files)
	if t.Failed() {
		t.Logf("movescu:\n%s", out)
	}
	requireAudit(t, n, consent.Entry{Action: actDICOMMove, Study: study, Actor: "ae:WORKSTATION", Reason: "to:DEST"})

	out = move("NOWHERE", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+study)
	if !strings.Contains(strings.ToLower(out), "a801") && !strings.Contains(out, "MoveDestinationUnknown") {
		t.Errorf("move to an unknown AE: want A801\n%s", out)
	}
}

// getscu retrieves a series and then an image on its own association
// (C-STORE sub-operations, SCP role) and receives the exact data sets.
func TestDICOMGetscu(t *testing.T) {
	needTool(t, "getscu")
	n := qrNode(t, 0)
	study, files := ctStudy(t, 51, 3, "GET^ME")
	importFiles(t, n, files)
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	dir := t.TempDir()
	out, err := exec.Command("getscu", "-aet", "WORKSTATION", "-aec", n.cfg.AETitle, "-S", "-od", dir,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("getscu: %v\n%s", err, out)
	}
	wantDataSets(t, receivedDataSets(t, dir), files)
	if t.Failed() {
		t.Logf("getscu:\n%s", out)
	}
	requireAudit(t, n, consent.Entry{Action: actDICOMGet, Study: study, Actor: "ae:WORKSTATION"})

	insts, _ := n.Instances(study)
	dir = t.TempDir()
	out, err = exec.Command("getscu", "-aet", "WORKSTATION", "-aec", n.cfg.AETitle, "-S", "-od", dir,
		"-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID="+study, "-k", "SeriesInstanceUID="+insts[0].Series,
		"-k", "SOPInstanceUID="+insts[2].SOPInstanceUID, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("getscu: %v\n%s", err, out)
	}
	if got := receivedDataSets(t, dir); len(got) != 1 || got[insts[2].SOPInstanceUID] == nil {
		t.Fatalf("image-level get received %d instances\n%s", len(got), out)
	}
}

// A workstation at Riverside finds and retrieves, through Riverside's
// DICOM port only, a study St Mary granted to Riverside: listed NEARLINE,
// fetched over the exchange on C-MOVE, delivered exactly, then listed
// ONLINE once. A study St Mary did not grant is neither found nor moved.
func TestDICOMMovePartnerStudy(t *testing.T) {
	needTool(t, "findscu", "movescu", "getscu", "storescp")
	destPort, dir := storescp(t, "DEST")
	stMary := newNode(t, "St Mary")
	riverside := qrNode(t, destPort)
	link(t, stMary, riverside)
	granted, files := ctStudy(t, 61, 3, "PARTNER^SHARED")
	importFiles(t, stMary, files)
	secret, other := ctStudy(t, 62, 2, "PARTNER^SECRET")
	importFiles(t, stMary, other)
	grant(t, stMary, riverside, granted)
	waitShared(t, riverside, stMary, granted, "available", 1, deliverTimeout)

	keys := []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientName", "InstanceAvailability",
		"RetrieveAETitle", "NumberOfStudyRelatedInstances"}
	got := findscu(t, riverside, "-S", keys...)
	if len(got) != 1 || got[0].String(tagStudyUID) != granted || got[0].String(tagAvailability) != "NEARLINE" ||
		got[0].String(tagRetrieveAE) != riverside.cfg.AETitle || got[0].String(0x00201208) != "3" {
		t.Fatalf("before the move: %v", got)
	}
	host, port, _ := net.SplitHostPort(riverside.DICOMAddr())
	move := func(study string) string {
		out, _ := exec.Command("movescu", "-aet", "WORKSTATION", "-aec", riverside.cfg.AETitle, "-aem", "DEST", "-S",
			"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, host, port).CombinedOutput()
		return string(out)
	}
	out := move(granted)
	wantDataSets(t, receivedDataSets(t, dir), files)
	if t.Failed() {
		t.Fatalf("movescu:\n%s", out)
	}
	got = findscu(t, riverside, "-S", keys...)
	if len(got) != 1 || got[0].String(tagAvailability) != "ONLINE" {
		t.Fatalf("after the move: %v", got)
	}
	waitAudit(t, riverside, consent.Entry{Action: consent.ActFetchCompleted, Study: granted, Actor: "ae:WORKSTATION"})
	requireAudit(t, riverside, consent.Entry{Action: actDICOMMove, Study: granted, Reason: "to:DEST"})

	if got := findscu(t, riverside, "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+secret); len(got) != 0 {
		t.Fatalf("a study not granted is found: %v", got)
	}
	move(secret)
	if got := receivedDataSets(t, dir); len(got) != len(files) {
		t.Fatalf("a study not granted was moved: %d instances received", len(got))
	}

	// C-GET of another granted study, not yet fetched: fetched, then
	// delivered on the workstation's association.
	second, files2 := ctStudy(t, 63, 2, "PARTNER^GET")
	importFiles(t, stMary, files2)
	grant(t, stMary, riverside, second)
	waitShared(t, riverside, stMary, second, "available", 1, deliverTimeout)
	getDir := t.TempDir()
	out2, err := exec.Command("getscu", "-aet", "WORKSTATION", "-aec", riverside.cfg.AETitle, "-S", "-od", getDir,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+second, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("getscu: %v\n%s", err, out2)
	}
	wantDataSets(t, receivedDataSets(t, getDir), files2)
	requireAudit(t, riverside, consent.Entry{Action: actDICOMGet, Study: second, Actor: "ae:WORKSTATION"})
}

// A C-CANCEL sent right after a C-FIND ends it with 0xFE00 before every
// match was sent.
func TestDICOMFindCancel(t *testing.T) {
	n := qrNode(t, 0)
	study, files := ctStudy(t, 71, 30, "CANCEL^ME")
	importFiles(t, n, files)
	r := &dimse.Requestor{CallingAE: "WORKSTATION", CalledAE: n.cfg.AETitle,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dicomio.ExplicitVRLittleEndian}}}}
	ctx := context.Background()
	a, err := r.Dial(ctx, n.DICOMAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	var ident dimse.Dataset
	ident.Set(tagQRLevel, "CS", "IMAGE")
	ident.Set(tagStudyUID, "UI", study)
	ident.Set(tagSOPInstanceUID, "UI", "")
	b, _ := ident.Encode(dicomio.ExplicitVRLittleEndian)
	pc := a.ContextFor(dimse.StudyRootFind, "")
	if err := a.Send(pc.ID, &dimse.Command{Field: dimse.CFindRQ, MessageID: 7, AffectedSOPClass: dimse.StudyRootFind}, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(pc.ID, &dimse.Command{Field: dimse.CCancelRQ, MessageIDBeingAnswered: 7}, nil); err != nil {
		t.Fatal(err)
	}
	pending := 0
	for {
		m, err := a.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Data != nil {
			m.Data.Discard()
		}
		if m.Command.Status == dimse.StatusPending {
			pending++
			continue
		}
		if m.Command.Status != dimse.StatusCancel || pending >= len(files) {
			t.Fatalf("final status 0x%04X after %d pending answers; want 0xFE00 before %d", m.Command.Status, pending, len(files))
		}
		return
	}
}

// movescu's C-CANCEL after the first pending response stops the move:
// final status 0xFE00, not every instance sent.
func TestDICOMMoveCancel(t *testing.T) {
	needTool(t, "movescu", "storescp")
	destPort, dir := storescp(t, "DEST")
	n := qrNode(t, destPort)
	study, files := ctStudy(t, 81, 40, "CANCEL^MOVE")
	importFiles(t, n, files)
	host, port, _ := net.SplitHostPort(n.DICOMAddr())
	out, _ := exec.Command("movescu", "-v", "--cancel", "1", "-aet", "WORKSTATION", "-aec", n.cfg.AETitle, "-aem", "DEST", "-S",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, host, port).CombinedOutput()
	got := receivedDataSets(t, dir)
	if !strings.Contains(string(out), "Cancel") || len(got) >= len(files) {
		t.Fatalf("received %d of %d instances after a cancel\n%s", len(got), len(files), out)
	}
}

// Non-ASCII values are answered in UTF-8 with Specific Character Set
// ISO_IR 192; a Latin-1 query matches them.
func TestDICOMFindCharset(t *testing.T) {
	needTool(t, "findscu")
	n := qrNode(t, 0)
	study, files := ctStudy(t, 91, 1, "MÜLLER^JÖRG")
	importFiles(t, n, files)
	got := findscu(t, n, "-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientName=M*LLER*", "NumberOfStudyRelatedSeries")
	if len(got) != 1 || got[0].String(tagStudyUID) != study || got[0].String(0x00100010) != "MÜLLER^JÖRG" ||
		got[0].String(tagSpecificCharset) != charsetUTF8 || got[0].String(0x00201206) != "1" {
		t.Fatalf("answer: %v", got)
	}
	latin1 := "PatientName=M\xdcLLER^J\xd6RG"
	got = findscu(t, n, "-S", "QueryRetrieveLevel=STUDY", "SpecificCharacterSet=ISO_IR 100", "StudyInstanceUID", latin1)
	if len(got) != 1 {
		t.Fatalf("a Latin-1 query found %d studies", len(got))
	}
}
