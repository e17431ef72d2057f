package dicomio

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// trimPadding removes the trailing space/NUL padding of a value, and
// leading spaces too when leading is set (they are insignificant in LO,
// SH, CS, DA, TM, IS and UI).
func trimPadding(b []byte, leading bool) []byte {
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	if leading {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
	}
	return b
}

// attrNames are for messages: keywords are not patient data.
var attrNames = [numAttrs]string{
	aSpecificCharacterSet: "Specific Character Set",
	aSOPClassUID:          "SOP Class UID",
	aSOPInstanceUID:       "SOP Instance UID",
	aStudyInstanceUID:     "Study Instance UID",
	aSeriesInstanceUID:    "Series Instance UID",
	aPatientID:            "Patient ID",
	aIssuerOfPatientID:    "Issuer of Patient ID",
	aPatientName:          "Patient's Name",
	aPatientBirthDate:     "Patient's Birth Date",
	aPatientSex:           "Patient's Sex",
	aStudyDate:            "Study Date",
	aStudyTime:            "Study Time",
	aStudyDescription:     "Study Description",
	aAccessionNumber:      "Accession Number",
	aStudyID:              "Study ID",
	aModality:             "Modality",
	aSeriesDescription:    "Series Description",
	aSeriesNumber:         "Series Number",
	aInstanceNumber:       "Instance Number",
	aNumberOfFrames:       "Number of Frames",
	aSamplesPerPixel:      "Samples per Pixel",
	aRows:                 "Rows",
	aColumns:              "Columns",
	aBitsAllocated:        "Bits Allocated",
}

func attrLabel(i int) string { return attrNames[i] + " " + tagString(attrTags[i]) }

// parseIS parses an Integer String (PS3.5 6.2): optional sign and up to 12
// characters of digits, padded with spaces, within ±2^31-1.
func parseIS(b []byte) (int, bool) {
	s := strings.TrimSpace(string(trimPadding(b, true)))
	if s == "" || len(s) > 12 {
		return 0, false
	}
	neg := false
	switch s[0] {
	case '+':
		s = s[1:]
	case '-':
		neg, s = true, s[1:]
	}
	if s == "" {
		return 0, false
	}
	n := int64(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > 1<<31-1 {
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return int(n), true
}

func (w *walker) us(i int, big bool) (uint16, bool) {
	if !w.seen[i] || w.attrs[i].n != 2 {
		return 0, false
	}
	if big {
		return binary.BigEndian.Uint16(w.attrs[i].b), true
	}
	return binary.LittleEndian.Uint16(w.attrs[i].b), true
}

// asciiValue returns a CS/DA/TM value as a valid UTF-8 string.
func asciiValue(b []byte) string {
	s := string(trimPadding(b, true))
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

// required are the attributes an instance cannot be stored without.
var required = [...]int{aSOPClassUID, aSOPInstanceUID, aStudyInstanceUID, aSeriesInstanceUID}

// checkRequired validates the required UIDs of a walked dataset.
func (w *walker) checkRequired() *Error {
	for _, i := range required {
		u, n := w.attrs[i].trimmed()
		if !w.seen[i] || n == 0 {
			return newError(ErrCodeMissingAttribute, attrTags[i], -1, "dataset has no %s", attrLabel(i))
		}
		if n > 64 {
			// u may be cut (see value): its length is n.
			return newError(ErrCodeMalformed, attrTags[i], -1, "%s is %d characters long; a UID has at most 64", attrLabel(i), n)
		}
		// pacsnet's one UID rule (internal/uid): what is stored here can
		// be granted, fetched, exported and named in a URL.
		if _, err := uid.Check(string(u)); err != nil {
			return newError(ErrCodeMalformed, attrTags[i], -1, "%s is refused: %v", attrLabel(i), err)
		}
	}
	return nil
}

// fill copies the index attributes of a walked (and checkRequired-passed)
// dataset into inst.
func (w *walker) fill(inst *Instance, big bool) *Error {
	for i := range w.attrs {
		if w.seen[i] && w.attrs[i].n > maxIndexValueLen {
			return newError(ErrCodeMalformed, attrTags[i], -1, "%s value is %d bytes; index attributes are limited to %d",
				attrLabel(i), w.attrs[i].n, maxIndexValueLen)
		}
	}
	// From here on every value is held whole (see value).
	val := func(i int) []byte { return w.attrs[i].b }
	uidOf := func(i int) string {
		u := string(trimPadding(val(i), true))
		switch kind, _ := uid.Check(u); kind { // checkRequired refused the rest
		case uid.Letters:
			w.warn.add(attrLabel(i) + " is not a valid UID (it has letters; stored, and usable everywhere in pacsnet)")
		case uid.LeadingZero:
			w.warn.add(attrLabel(i) + " has a component with a leading zero")
		}
		return u
	}
	inst.SOPClassUID = uidOf(aSOPClassUID)
	inst.SOPInstanceUID = uidOf(aSOPInstanceUID)
	inst.StudyInstanceUID = uidOf(aStudyInstanceUID)
	inst.SeriesInstanceUID = uidOf(aSeriesInstanceUID)

	inst.SpecificCharacterSet = asciiValue(val(aSpecificCharacterSet))
	td := newTextDecoder(val(aSpecificCharacterSet), w.warn)
	text := func(i int, leading bool) string {
		s := td.decode(trimPadding(val(i), false))
		if leading {
			s = strings.TrimLeft(s, " ")
		}
		return s
	}
	inst.PatientName = text(aPatientName, false)
	inst.PatientID = text(aPatientID, true)
	inst.IssuerOfPatientID = text(aIssuerOfPatientID, true)
	inst.StudyDescription = text(aStudyDescription, true)
	inst.AccessionNumber = text(aAccessionNumber, true)
	inst.StudyID = text(aStudyID, true)
	inst.SeriesDescription = text(aSeriesDescription, true)

	inst.PatientBirthDate = asciiValue(val(aPatientBirthDate))
	inst.PatientSex = asciiValue(val(aPatientSex))
	inst.StudyDate = asciiValue(val(aStudyDate))
	inst.StudyTime = asciiValue(val(aStudyTime))
	inst.Modality = asciiValue(val(aModality))

	is := func(i int) int {
		if !w.seen[i] || len(trimPadding(val(i), true)) == 0 {
			return 0
		}
		n, ok := parseIS(val(i))
		if !ok {
			w.warn.add(attrLabel(i) + " is not a valid IS; read as 0")
			return 0
		}
		return n
	}
	inst.SeriesNumber = is(aSeriesNumber)
	inst.InstanceNumber = is(aInstanceNumber)
	inst.NumberOfFrames = is(aNumberOfFrames)
	if inst.NumberOfFrames < 0 {
		w.warn.add(attrLabel(aNumberOfFrames) + " is negative; read as 0")
		inst.NumberOfFrames = 0
	}
	w.checkPixelLength(inst, big)
	return nil
}

// checkPixelLength warns when native pixel data is shorter than the image
// it claims to hold. Only a warning: the structure is sound, and whether
// the pixels are usable is the viewer's business.
func (w *walker) checkPixelLength(inst *Instance, big bool) {
	if !w.pixelNative {
		return
	}
	rows, ok1 := w.us(aRows, big)
	cols, ok2 := w.us(aColumns, big)
	bits, ok3 := w.us(aBitsAllocated, big)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	spp, ok := w.us(aSamplesPerPixel, big)
	if !ok || spp == 0 {
		spp = 1
	}
	frames := int64(inst.NumberOfFrames)
	if frames < 1 {
		frames = 1
	}
	need := (int64(rows)*int64(cols)*int64(spp)*int64(bits)*frames + 7) / 8
	if w.pixelLen < need {
		w.warn.add("native Pixel Data (7FE0,0010) is shorter than Rows x Columns x Samples per Pixel x Bits Allocated x Number of Frames")
	}
}
