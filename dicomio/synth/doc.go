// Package synth generates realistic synthetic DICOM studies for tests,
// benchmarks and simulations: no real patient is behind any byte it
// writes.
//
// [CT] builds one CT study (one series of axial slices of a phantom: a
// body ellipse with fat, soft tissue, a bone ring, lungs, spine and aorta,
// plus noise) as Part-10 files in Explicit VR Little Endian, written with
// github.com/suyashkumar/dicom. Output is a deterministic function of
// [CTOptions]: the same seed gives the same bytes, and every UID is
// derived from the seed under the 2.25 (UUID) root.
//
// Imports: synth may import dicomio (its tests validate every file with
// it); nothing else of pacsnet.
package synth
