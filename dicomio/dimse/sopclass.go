package dimse

import "strings"

// Query/Retrieve and other service SOP classes (PS3.4).
const (
	PatientRootFind     = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootMove     = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootGet      = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootFind       = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootMove       = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootGet        = "1.2.840.10008.5.1.4.1.2.2.3"
	StorageCommitment   = "1.2.840.10008.1.20.1"
	StorageCommitmentID = "1.2.840.10008.1.20.1.1" // the well-known SOP instance
)

// storagePrefix holds the Storage SOP classes of PS3.4 Annex B (images,
// waveforms, SR, RT, presentation states, segmentation, …), those the
// standard adds later included.
const storagePrefix = "1.2.840.10008.5.1.4.1.1."

// otherStorage are the Storage SOP classes defined outside that arc.
var otherStorage = map[string]bool{
	"1.2.840.10008.5.1.4.34.10":  true, // RT Brachy Application Setup Delivery Instruction Storage
	"1.2.840.10008.5.1.4.38.1":   true, // Hanging Protocol Storage
	"1.2.840.10008.5.1.4.39.1":   true, // Color Palette Storage
	"1.2.840.10008.5.1.4.43.1":   true, // Generic Implant Template Storage
	"1.2.840.10008.5.1.4.44.1":   true, // Implant Assembly Template Storage
	"1.2.840.10008.5.1.4.45.1":   true, // Implant Template Group Storage
	"1.2.840.10008.5.1.4.1.1.66": true, // Raw Data Storage (also in the arc; listed for clarity)
}

// IsStorage reports whether uid is a Storage SOP class of the standard.
func IsStorage(uid string) bool {
	if otherStorage[uid] {
		return true
	}
	rest, ok := strings.CutPrefix(uid, storagePrefix)
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}
