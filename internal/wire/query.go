package wire

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// PatientQuery asks a partner which of a patient's studies it holds
// (federated patient search). The answer is minimal: no pixel data, no
// other patient, not even the patient's name.
type PatientQuery struct {
	PatientID string `json:"patient_id"`
	Issuer    string `json:"issuer,omitempty"`
	BirthDate string `json:"birth_date,omitempty"` // YYYYMMDD: when given, only studies with this birth date match
	User      string `json:"user"`                 // the asking user's ID at the asking facility (for the holder's audit)
}

// QueryAnswer lists the studies a partner holds of the patient. A partner
// that does not let us query, and one without the patient, answer the
// same: no studies.
type QueryAnswer struct {
	Studies []FoundStudy `json:"studies"`
}

// FoundStudy is one study in a QueryAnswer.
type FoundStudy struct {
	StudyUID    string   `json:"study_uid"`
	StudyDate   string   `json:"study_date,omitempty"` // YYYYMMDD
	Modalities  []string `json:"modalities,omitempty"`
	Description string   `json:"description,omitempty"`
	Instances   int      `json:"instances"`
}

// Limits of queries and answers.
const (
	MaxQueryStudies = 500
	maxQueryField   = 256
)

func printableText(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// Validate checks a query's fields; errors wrap ErrBadAsk.
func (q *PatientQuery) Validate() error {
	switch {
	case strings.TrimSpace(q.PatientID) == "":
		return badAsk("patient query: patient ID is empty")
	case !printableText(q.PatientID, maxQueryField), !printableText(q.Issuer, maxQueryField):
		return badAsk("patient query: patient ID or issuer too long or with control characters")
	case q.BirthDate != "" && !isDate(q.BirthDate):
		return badAsk("patient query: birth date is not YYYYMMDD")
	case strings.TrimSpace(q.User) == "" || !printableText(q.User, maxQueryField):
		return badAsk("patient query: user missing or malformed")
	}
	return nil
}

// Validate checks an answer: at most MaxQueryStudies studies, valid and
// distinct UIDs, dates, short printable texts; errors wrap ErrBadAsk.
func (a *QueryAnswer) Validate() error {
	if len(a.Studies) > MaxQueryStudies {
		return badAsk("query answer: %d studies, at most %d", len(a.Studies), MaxQueryStudies)
	}
	seen := map[string]bool{}
	for i, s := range a.Studies {
		switch {
		case !uid.Valid(s.StudyUID) || seen[s.StudyUID]:
			return badAsk("query answer: study %d: UID malformed or repeated", i)
		case s.StudyDate != "" && !isDate(s.StudyDate):
			return badAsk("query answer: study %d: date is not YYYYMMDD", i)
		case !printableText(s.Description, maxQueryField) || len(s.Modalities) > 16 || s.Instances < 0:
			return badAsk("query answer: study %d: malformed fields", i)
		}
		for _, m := range s.Modalities {
			if !printableText(m, 16) {
				return badAsk("query answer: study %d: malformed modality", i)
			}
		}
		seen[s.StudyUID] = true
	}
	return nil
}

func isDate(s string) bool {
	_, err := time.Parse("20060102", s)
	return err == nil && len(s) == 8
}
