package dicomio

import "strings"

// Transfer syntax UIDs the package names itself.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
)

// encoding is how the elements of a dataset are laid out.
type layout struct {
	explicit bool
	big      bool
}

var (
	encExplicitLE = layout{explicit: true}
	encImplicitLE = layout{}
	encExplicitBE = layout{explicit: true, big: true}
)

func (e layout) String() string {
	switch e {
	case encExplicitLE:
		return "explicit VR little endian"
	case encImplicitLE:
		return "implicit VR little endian"
	case encExplicitBE:
		return "explicit VR big endian"
	}
	return "implicit VR big endian"
}

// tsInfo describes a transfer syntax we accept.
type tsInfo struct {
	enc          layout
	deflated     bool // the dataset after the meta group is a raw DEFLATE stream
	encapsulated bool // pixel data is expected to be encapsulated (fragments)
}

// Every standard transfer syntax whose dataset encoding we know. Anything
// else is refused as unsupported: an unknown UID could mean an encoding we
// would misread, and then the validation would prove nothing.
var transferSyntaxes = func() map[string]tsInfo {
	m := map[string]tsInfo{
		ImplicitVRLittleEndian:         {enc: encImplicitLE},
		ExplicitVRLittleEndian:         {enc: encExplicitLE},
		ExplicitVRBigEndian:            {enc: encExplicitBE},
		DeflatedExplicitVRLittleEndian: {enc: encExplicitLE, deflated: true},
		"1.2.840.10008.1.2.1.98":       {enc: encExplicitLE, encapsulated: true}, // Encapsulated Uncompressed
		"1.2.840.10008.1.2.4.94":       {enc: encExplicitLE},                     // JPIP Referenced
		"1.2.840.10008.1.2.4.95":       {enc: encExplicitLE, deflated: true},     // JPIP Referenced Deflate
		"1.2.840.10008.1.2.4.204":      {enc: encExplicitLE},                     // JPIP HTJ2K Referenced
		"1.2.840.10008.1.2.4.205":      {enc: encExplicitLE, deflated: true},     // JPIP HTJ2K Referenced Deflate
		"1.2.840.10008.1.2.5":          {enc: encExplicitLE, encapsulated: true}, // RLE Lossless
		"1.2.840.10008.1.2.6.1":        {enc: encExplicitLE},                     // RFC 2557 MIME (retired)
		"1.2.840.10008.1.2.7.1":        {enc: encExplicitLE},                     // SMPTE ST 2110-20
		"1.2.840.10008.1.2.7.2":        {enc: encExplicitLE},                     // SMPTE ST 2110-30
		"1.2.840.10008.1.2.7.3":        {enc: encExplicitLE},                     // SMPTE ST 2110-30 (audio)
		"1.2.840.10008.1.2.8.1":        {enc: encExplicitLE, encapsulated: true}, // Deflated Image Frame Compression
	}
	// JPEG (50-66, 70; many retired), JPEG-LS (80, 81), JPEG 2000 (90-93),
	// MPEG-2/4 and HEVC (100-108), JPEG XL (110-112), HTJ2K (201-203).
	for _, n := range []string{
		"50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64", "65", "66", "70",
		"80", "81", "90", "91", "92", "93",
		"100", "101", "102", "103", "104", "105", "106", "107", "108",
		"110", "111", "112", "201", "202", "203",
	} {
		m["1.2.840.10008.1.2.4."+n] = tsInfo{enc: encExplicitLE, encapsulated: true}
	}
	return m
}()

func lookupTS(uid string) (tsInfo, bool) {
	ts, ok := transferSyntaxes[uid]
	return ts, ok
}

// printableUID returns uid if it is safe to put in an error message (a
// transfer syntax UID is not patient data, but the bytes came from the
// input, which may be hostile), otherwise a description of its length.
func printableUID(uid string) string {
	if len(uid) <= 64 && strings.Trim(uid, "0123456789.") == "" {
		return uid
	}
	return "(" + itoa(len(uid)) + " bytes, not a UID)"
}

// KnownTransferSyntax reports whether uid is a transfer syntax whose
// dataset encoding this package reads: the ones the DICOM edge accepts as
// offered (no transcoding).
func KnownTransferSyntax(uid string) bool {
	_, ok := transferSyntaxes[uid]
	return ok
}
