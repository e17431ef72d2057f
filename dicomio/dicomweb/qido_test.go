package dicomweb

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
)

// el is an identifier element as the tests write it.
type el struct {
	tag   uint32
	vr    string
	value string
}

func elements(ds dicomio.Dataset) []el {
	var out []el
	for _, e := range ds {
		out = append(out, el{e.Tag, e.VR, string(e.Value)})
	}
	return out
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level Level
		query string
		want  []el
		check func(t *testing.T, q *Query)
	}{
		{"the PS3.18 example", LevelStudy,
			"PatientName=Smith*&StudyDate=20200101-20201231&limit=25&offset=50&includefield=00081030,ModalitiesInStudy",
			[]el{{0x00080020, "DA", "20200101-20201231"}, {0x00080061, "CS", ""}, {0x00081030, "LO", ""}, {0x00100010, "PN", "Smith*"}},
			func(t *testing.T, q *Query) {
				if q.Limit != 25 || q.Offset != 50 || q.IncludeAll || q.Fuzzy || q.Unsupported != nil {
					t.Errorf("got %+v", q)
				}
			}},
		{"empty query", LevelStudy, "", nil, nil},
		{"tag and keyword", LevelSeries, "0020000D=1.2.3&Modality=CT", []el{{0x00080060, "CS", "CT"}, {0x0020000D, "UI", "1.2.3"}}, nil},
		{"lowercase hex tag", LevelSeries, "0008103e=Head*", []el{{0x0008103E, "LO", "Head*"}}, nil},
		{"UID list by comma", LevelStudy, "StudyInstanceUID=1.2.3,1.2.4", []el{{0x0020000D, "UI", `1.2.3\1.2.4`}}, nil},
		{"UID list by repeating", LevelStudy, "StudyInstanceUID=1.2.3&StudyInstanceUID=1.2.4&0020000D=1.2.5",
			[]el{{0x0020000D, "UI", `1.2.3\1.2.4\1.2.5`}}, nil},
		{"CS list", LevelStudy, "ModalitiesInStudy=CT,MR", []el{{0x00080061, "CS", `CT\MR`}}, nil},
		{"date list", LevelStudy, "StudyDate=20200101,20200105", []el{{0x00080020, "DA", `20200101\20200105`}}, nil},
		{"open ranges", LevelStudy, "StudyDate=-20201231&StudyTime=0800-", []el{{0x00080020, "DA", "-20201231"}, {0x00080030, "TM", "0800-"}}, nil},
		{"times", LevelStudy, "StudyTime=101530.123456", []el{{0x00080030, "TM", "101530.123456"}}, nil},
		{"date-time range and offset", LevelInstance, "AcquisitionDateTime=20200101-20200102120000.5&ContentDate=20200229",
			[]el{{0x00080023, "DA", "20200229"}, {0x0008002A, "DT", "20200101-20200102120000.5"}}, nil},
		{"date-time with a negative offset", LevelInstance, "AcquisitionDateTime=20200101120000%2B0100-", []el{{0x0008002A, "DT", "20200101120000+0100-"}}, nil},
		{"PN as given, commas kept", LevelStudy, "PatientName=Doe%5EJane%3D%E5%B1%B1%E7%94%B0&ReferringPhysicianName=Smith,%20J",
			[]el{{0x00080005, "CS", "ISO_IR 192"}, {0x00080090, "PN", "Smith, J"}, {0x00100010, "PN", "Doe^Jane=山田"}}, nil},
		{"plus is a space", LevelStudy, "StudyDescription=Head+Neck", []el{{0x00081030, "LO", "Head Neck"}}, nil},
		{"empty value is a return key", LevelStudy, "PatientID=&includefield=PatientID", []el{{0x00100020, "LO", ""}}, nil},
		{"matching key also included", LevelStudy, "PatientID=X1&includefield=PatientID", []el{{0x00100020, "LO", "X1"}}, nil},
		{"includefield repeats", LevelInstance, "includefield=Rows&includefield=Columns,ReferencedSeriesSequence&includefield=all",
			[]el{{0x00081115, "SQ", ""}, {0x00280010, "US", ""}, {0x00280011, "US", ""}},
			func(t *testing.T, q *Query) {
				if !q.IncludeAll {
					t.Error("IncludeAll not set")
				}
			}},
		{"fuzzymatching", LevelStudy, "fuzzymatching=true&emptyvaluematching=false", nil, func(t *testing.T, q *Query) {
			if !q.Fuzzy || !reflect.DeepEqual(q.Unsupported, []string{"fuzzymatching"}) {
				t.Errorf("got %+v", q)
			}
		}},
		{"fuzzymatching=false", LevelStudy, "fuzzymatching=false", nil, func(t *testing.T, q *Query) {
			if q.Fuzzy || q.Unsupported != nil {
				t.Errorf("got %+v", q)
			}
		}},
		{"extra", LevelStudy, "shared=true&limit=0&&", nil, func(t *testing.T, q *Query) {
			if !reflect.DeepEqual(q.Extra, url.Values{"shared": {"true"}}) || q.Limit != 0 {
				t.Errorf("got %+v", q)
			}
		}},
		{"wildcards", LevelSeries, "SeriesDescription=%3Fead*&AccessionNumber=A*", []el{{0x00080050, "SH", "A*"}, {0x0008103E, "LO", "?ead*"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.level, tc.query, "shared")
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			if q.Level != tc.level {
				t.Errorf("level %v", q.Level)
			}
			if tc.want != nil || tc.check == nil {
				if got := elements(q.Identifier); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("identifier\n got %v\nwant %v", got, tc.want)
				}
			}
			if tc.check != nil {
				tc.check(t, q)
			}
			roundTrip(t, q.Identifier)
		})
	}
}

// roundTrip checks that an identifier encodes and decodes to itself (the
// query room reads identifiers so).
func roundTrip(t *testing.T, ds dicomio.Dataset) {
	t.Helper()
	for _, ts := range []string{dicomio.ExplicitVRLittleEndian, dicomio.ImplicitVRLittleEndian} {
		b, err := ds.Encode(ts)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := dicomio.DecodeDataset(b, ts)
		if err != nil {
			t.Fatalf("DecodeDataset: %v", err)
		}
		if len(back) != len(ds) {
			t.Fatalf("%d elements back, %d sent", len(back), len(ds))
		}
		for i, e := range ds {
			if back[i].Tag != e.Tag || back[i].VR != e.VR || back.String(e.Tag) != ds.String(e.Tag) {
				t.Errorf("element %08X: got %s %q, sent %s %q", e.Tag, back[i].VR, back.String(e.Tag), e.VR, ds.String(e.Tag))
			}
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	long := strings.Repeat("A", 65)
	for _, tc := range []struct {
		query, param, msg string
	}{
		{"foo=bar", "foo", "unknown attribute"},
		{"PatientsName=X", "PatientsName", "unknown attribute"},
		{"Patient%27s%20Name=X", "Patient's Name", "neither a DICOM keyword"},
		{"00091010=X", "00091010", "private"},
		{"00100000=X", "00100000", "group lengths"},
		{"00089999=X", "00089999", "unknown attribute"},
		{"0040A730.00080100=X", "0040A730.00080100", "sequence paths"},
		{"includefield=ReferencedSeriesSequence.SeriesInstanceUID", "includefield", "sequence paths"},
		{"includefield=Nope", "includefield", "unknown attribute"},
		{"includefield=", "includefield", "names no attribute"},
		{"PatientName=A&PatientName=B", "PatientName", "more than once"},
		{"PatientName=A&00100010=B", "00100010", "more than once"},
		{"StudyInstanceUID=&StudyInstanceUID=1.2", "StudyInstanceUID", "more than once"},
		{"limit=1&limit=2", "limit", "more than once"},
		{"limit=-1", "limit", "non-negative integer"},
		{"limit=abc", "limit", "non-negative integer"},
		{"offset=", "offset", "non-negative integer"},
		{"offset=+3", "offset", "non-negative integer"},
		{"limit=99999999999", "limit", "non-negative integer"},
		{"limit=9999999999", "limit", "at most"},
		{"fuzzymatching=yes", "fuzzymatching", "true or false"},
		{"StudyDate=2020", "StudyDate", "malformed date"},
		{"StudyDate=20201301", "StudyDate", "malformed date"},
		{"StudyDate=20200230", "StudyDate", "malformed date"},
		{"StudyDate=2020-01-01", "StudyDate", "malformed date"},
		{"StudyDate=20200101-20201231-", "StudyDate", "malformed date"},
		{"StudyDate=-", "StudyDate", "at least one bound"},
		{"StudyDate=20200101-20200102,20200105", "StudyDate", "range cannot be part of a list"},
		{"StudyDate=20200101&StudyDate=20200102-", "StudyDate", "range cannot be part of a list"},
		{"StudyDate=20200101,,20200102", "StudyDate", "empty value in a list"},
		{"StudyTime=2500", "StudyTime", "malformed time"},
		{"StudyTime=10:15", "StudyTime", "malformed time"},
		{"StudyTime=101500.1234567", "StudyTime", "malformed time"},
		{"AcquisitionDateTime=2020010112x", "AcquisitionDateTime", "malformed date-time"},
		{"AcquisitionDateTime=20200101+2500", "AcquisitionDateTime", "malformed date-time"},
		{"StudyInstanceUID=1.2.a", "StudyInstanceUID", "malformed UID"},
		{"StudyInstanceUID=1.2.3*", "StudyInstanceUID", "malformed UID"},
		{"StudyInstanceUID=" + strings.Repeat("1", 65), "StudyInstanceUID", "malformed UID"},
		{"SeriesNumber=x", "SeriesNumber", "malformed integer"},
		{"PatientAge=12", "PatientAge", "malformed age"},
		{"AccessionNumber=" + strings.Repeat("A", 17), "AccessionNumber", "longer than 16"},
		{"PatientID=" + long, "PatientID", "longer than 64"},
		{"PatientName=" + long, "PatientName", "longer than 64"},
		{"PatientName=a=b=c=d", "PatientName", "three component groups"},
		{"PatientName=Smith%0A", "PatientName", "control character"},
		{"PatientName=Smith%C2%85", "PatientName", "control character"},
		{"PatientName=%FF", "PatientName", "not valid UTF-8"},
		{"PatientName=%zz", "PatientName", "percent-encoding"},
		{"Patient%0AName=x", "Patient?Name", "control character"},
		{"=x", "", "no name"},
		{"QueryRetrieveLevel=PATIENT", "QueryRetrieveLevel", "set by the server"},
		{"SpecificCharacterSet=ISO_IR%20100", "SpecificCharacterSet", "set by the server"},
		{"ReferencedSeriesSequence=x", "ReferencedSeriesSequence", "sequence matching"},
		{"Rows=512", "Rows", "binary attribute"},
		{"includefield=all&shared=true", "shared", "unknown attribute"},
		{strings.Repeat("includefield=all&", 201), "", "more than 200 parameters"},
		{"PatientID=" + strings.Repeat("A", MaxQueryLen), "", "longer than"},
	} {
		t.Run(tc.query[:min(len(tc.query), 40)], func(t *testing.T) {
			q, err := ParseQuery(LevelStudy, tc.query)
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("got %+v, %v; want a *QueryError", q, err)
			}
			if qe.Param != tc.param || !strings.Contains(qe.Msg, tc.msg) {
				t.Errorf("got %q %q, want %q ~%q", qe.Param, qe.Msg, tc.param, tc.msg)
			}
		})
	}
}

// TestParseQueryNoValuesInErrors: an error names the parameter, never
// the patient value given.
func TestParseQueryNoValuesInErrors(t *testing.T) {
	for _, q := range []string{
		"PatientName=SECRET%0A", "PatientID=SECRET" + strings.Repeat("X", 70), "StudyDate=SECRET",
		"PatientBirthDate=SECRET", "StudyInstanceUID=SECRET", "limit=SECRET", "fuzzymatching=SECRET",
		"PatientAge=SECRET", "SeriesNumber=SECRET", "includefield=PatientName,SECRET",
	} {
		_, err := ParseQuery(LevelStudy, q)
		if err == nil {
			t.Fatalf("%s: accepted", q)
		}
		if strings.Contains(err.Error(), "SECRET") && !strings.HasPrefix(q, "includefield") {
			t.Errorf("%s: value in the error: %v", q, err)
		}
	}
}

func TestParseQueryLevel(t *testing.T) {
	if _, err := ParseQuery(Level(0), ""); err == nil {
		t.Error("level 0 accepted")
	}
	if fmt.Sprint(LevelSeries) != "SERIES" {
		t.Error(LevelSeries)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"PatientName=Smith*&StudyDate=20200101-20201231&limit=25&offset=50&includefield=00081030,ModalitiesInStudy",
		"StudyInstanceUID=1.2.3,1.2.4&fuzzymatching=true&includefield=all",
		"AcquisitionDateTime=20200101120000-0500-&StudyTime=0800-",
		"PatientName=Doe%5EJane%3D%E5%B1%B1&shared=true", "limit=-1", "a.b=c", "%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(LevelInstance, s, "shared")
		if err != nil {
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("not a *QueryError: %v", err)
			}
			for i := 0; i < len(qe.Param); i++ {
				if qe.Param[i] < 0x20 || qe.Param[i] >= 0x7F {
					t.Fatalf("unsafe param %q", qe.Param)
				}
			}
			return
		}
		for i := 1; i < len(q.Identifier); i++ {
			if q.Identifier[i-1].Tag >= q.Identifier[i].Tag {
				t.Fatal("identifier not in tag order")
			}
		}
		if q.Limit < 0 || q.Offset < 0 {
			t.Fatal("negative limit or offset")
		}
		roundTrip(t, q.Identifier)
	})
}

// TestQueryRoomKeys: the keys the node's query room matches (node/query.go
// queryKeys, Instance Availability, Retrieve AE Title) resolve by keyword
// to the tags and VRs that room expects.
func TestQueryRoomKeys(t *testing.T) {
	for kw, want := range map[string]el{
		"PatientName": {0x00100010, "PN", ""}, "PatientID": {0x00100020, "LO", ""},
		"IssuerOfPatientID": {0x00100021, "LO", ""}, "PatientBirthDate": {0x00100030, "DA", ""},
		"PatientSex": {0x00100040, "CS", ""}, "NumberOfPatientRelatedStudies": {0x00201200, "IS", ""},
		"NumberOfPatientRelatedSeries": {0x00201202, "IS", ""}, "NumberOfPatientRelatedInstances": {0x00201204, "IS", ""},
		"StudyDate": {0x00080020, "DA", ""}, "StudyTime": {0x00080030, "TM", ""},
		"AccessionNumber": {0x00080050, "SH", ""}, "ModalitiesInStudy": {0x00080061, "CS", ""},
		"StudyDescription": {0x00081030, "LO", ""}, "StudyInstanceUID": {0x0020000D, "UI", ""},
		"StudyID": {0x00200010, "SH", ""}, "NumberOfStudyRelatedSeries": {0x00201206, "IS", ""},
		"NumberOfStudyRelatedInstances": {0x00201208, "IS", ""}, "Modality": {0x00080060, "CS", ""},
		"SeriesDescription": {0x0008103E, "LO", ""}, "SeriesInstanceUID": {0x0020000E, "UI", ""},
		"SeriesNumber": {0x00200011, "IS", ""}, "NumberOfSeriesRelatedInstances": {0x00201209, "IS", ""},
		"SOPClassUID": {0x00080016, "UI", ""}, "SOPInstanceUID": {0x00080018, "UI", ""},
		"InstanceNumber": {0x00200013, "IS", ""}, "InstanceAvailability": {0x00080056, "CS", ""},
		"RetrieveAETitle": {0x00080054, "AE", ""},
	} {
		for _, name := range []string{kw, fmt.Sprintf("%08X", want.tag)} {
			q, err := ParseQuery(LevelInstance, "includefield="+name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := elements(q.Identifier); len(got) != 1 || got[0] != want {
				t.Errorf("%s: %v, want %v", name, got, want)
			}
		}
	}
}
