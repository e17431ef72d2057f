package dimse

import "testing"

func TestIsStorage(t *testing.T) {
	for uid, want := range map[string]bool{
		"1.2.840.10008.5.1.4.1.1.2":      true, // CT
		"1.2.840.10008.5.1.4.1.1.77.1.6": true, // VL Whole Slide Microscopy
		"1.2.840.10008.5.1.4.1.1.66.8":   true, // Label Map Segmentation (2024)
		"1.2.840.10008.5.1.4.43.1":       true,
		"1.2.840.10008.5.1.4.1.2.2.1":    false, // Study Root FIND
		"1.2.840.10008.1.1":              false,
		"1.2.840.10008.5.1.4.1.1.":       false,
		"1.2.840.10008.5.1.4.1.1.2x":     false,
		"1.3.6.1.4.1.9590.100.1.2.12345": false,
	} {
		if IsStorage(uid) != want {
			t.Errorf("IsStorage(%s) = %v", uid, !want)
		}
	}
}
