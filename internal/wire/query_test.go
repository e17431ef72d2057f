package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestPatientQueryAndAnswer(t *testing.T) {
	good := PatientQuery{PatientID: "PAT-1", Issuer: "HOSP", BirthDate: "19700102", User: "u-1"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]PatientQuery{
		"no patient":    {User: "u-1"},
		"control":       {PatientID: "P\x1b]0;x\x07", User: "u-1"},
		"long issuer":   {PatientID: "P", Issuer: strings.Repeat("i", 300), User: "u-1"},
		"bad birth":     {PatientID: "P", BirthDate: "19701301", User: "u-1"},
		"no user":       {PatientID: "P"},
		"control user":  {PatientID: "P", User: "u\n1"},
		"birth as text": {PatientID: "P", BirthDate: "1 Jan 70", User: "u-1"},
	} {
		if err := q.Validate(); !errors.Is(err, ErrBadAsk) {
			t.Errorf("%s: %v", name, err)
		}
	}
	a := QueryAnswer{Studies: []FoundStudy{{StudyUID: "1.2.3", StudyDate: "20260101", Modalities: []string{"CT"}, Instances: 3}}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	many := QueryAnswer{Studies: make([]FoundStudy, MaxQueryStudies+1)}
	for name, a := range map[string]QueryAnswer{
		"bad uid":      {Studies: []FoundStudy{{StudyUID: "..", Instances: 1}}},
		"repeated":     {Studies: []FoundStudy{{StudyUID: "1.2"}, {StudyUID: "1.2"}}},
		"bad date":     {Studies: []FoundStudy{{StudyUID: "1.2", StudyDate: "2026"}}},
		"control":      {Studies: []FoundStudy{{StudyUID: "1.2", Description: "\x1b[2J"}}},
		"negative":     {Studies: []FoundStudy{{StudyUID: "1.2", Instances: -1}}},
		"bad modality": {Studies: []FoundStudy{{StudyUID: "1.2", Modalities: []string{strings.Repeat("M", 17)}}}},
		"too many":     many,
	} {
		if err := a.Validate(); !errors.Is(err, ErrBadAsk) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzQueryAnswer feeds arbitrary answer bodies through the strict decode
// and validation a node applies to a partner's answer.
func FuzzQueryAnswer(f *testing.F) {
	b, _ := json.Marshal(QueryAnswer{Studies: []FoundStudy{{StudyUID: "1.2.3", StudyDate: "20260101", Modalities: []string{"CT"}, Instances: 3}}})
	f.Add(b)
	f.Add([]byte(`{"studies":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e := Envelope{Kind: KindAnswer, Body: body}
		var a QueryAnswer
		if err := e.DecodeBody(&a); err != nil {
			if !errors.Is(err, ErrBadAsk) {
				t.Fatalf("decode error does not wrap ErrBadAsk: %v", err)
			}
			return
		}
		if err := a.Validate(); err == nil && len(a.Studies) > MaxQueryStudies {
			t.Fatal("an answer beyond the cap was accepted")
		}
	})
}
