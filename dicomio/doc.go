// Package dicomio parses and validates untrusted DICOM instances,
// normalizes them for storage, and extracts the attributes pacsnet indexes.
//
// # What it guarantees
//
// [Parse], [Read] and [ParseStream] accept a Part-10 file or a bare dataset (a C-STORE
// payload) and either return an [Instance] or an *[Error]; they never
// panic, never loop without consuming input, and never allocate in
// proportion to a length read from the input: every declared length is
// checked against the bytes actually present before anything is done with
// it, sequence nesting and element counts are capped by [Limits], and a
// deflated dataset is inflated under a size cap.
//
// The structure is validated by our own element walker (explicit VR little
// and big endian, implicit VR little endian, deflated explicit VR little
// endian; undefined-length sequences and items; CP-246 sequences of VR UN;
// encapsulated pixel data walked by item lengths). The walker exists
// because github.com/suyashkumar/dicom trusts value lengths, panics on
// some inputs and accepts truncated data; that library is used only for
// what is safe in it (its tag dictionary and character set table), behind
// recover.
//
// # Streaming
//
// [ParseStream] applies the same rules to an instance read from an
// io.Reader and writes the normalized bytes to an io.Writer as it goes,
// holding at most [Limits.Buffer] bytes of input (4 MiB by default) plus
// small per-element state, so a 1 GiB multi-frame instance costs the same
// memory as a small one. Parse and ParseStream share one walker, which
// reads through a source: the whole input in memory, or a window sliding
// along the stream (source.go). Where Parse decides by trying several
// encodings over the whole input (a bare dataset, a declared transfer
// syntax that does not match), ParseStream walks them side by side as
// coroutines over one window. Its results are those of Parse: the same
// Digest, attributes and warnings, or an error with the same code; the
// exceptions, refused with ErrCodeTooLarge, are inputs whose decisions
// cannot be made within Buffer bytes (see ParseStream).
//
// # Normalization
//
// A Part-10 input keeps every byte except the 128-byte preamble, which is
// zeroed (CVE-2019-11687: a preamble can make a DICOM file a valid
// executable or archive too). A bare dataset gets a zero preamble, "DICM"
// and a file meta group written by this package (identified by
// [ImplementationClassUID]); the dataset bytes themselves are never
// re-encoded. [Instance.Digest] is the SHA-256 of the normalized bytes,
// and normalizing a normalized instance gives it back unchanged.
//
// # Describing a stored instance
//
// [Describe] reads a normalized instance back into its whole data set
// ([Dataset], values little endian) for the DICOMweb JSON model, with
// Pixel Data and long top-level binary values left out as byte ranges of
// the stored bytes, and the pixel data's frames as ranges too
// ([Description], [PixelData]). It follows the walker's rules, so every
// instance Parse accepted describes.
//
// # Errors and patient data
//
// Error messages and warnings carry tags, offsets, lengths and transfer
// syntax UIDs only, never attribute values, so they may be logged or sent
// to a peer. Attribute values live only in [Instance] fields.
//
// # Imports
//
// dicomio imports nothing of pacsnet: node, exchange and the DIMSE and
// DICOMweb front ends build on it, not the other way round.
package dicomio
