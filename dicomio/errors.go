package dicomio

import (
	"errors"
	"fmt"
)

// ErrorCode classifies why an instance was refused. Callers map it onto
// their own wire codes (a DIMSE status, an HTTP status); the set is closed
// so that mapping can be exhaustive.
type ErrorCode int

const (
	// ErrCodeTruncated: the input ends before a declared length or before a
	// delimitation item that must follow.
	ErrCodeTruncated ErrorCode = iota + 1
	// ErrCodeMalformed: the bytes are not a well-formed DICOM encoding
	// (inconsistent lengths, invalid VR, wrong item structure, invalid UID,
	// a dataset that does not match its declared transfer syntax, a bare
	// dataset that reads cleanly in more than one encoding).
	ErrCodeMalformed
	// ErrCodeUnsupported: well-formed, but encoded in a way we do not
	// accept, e.g. an unknown transfer syntax UID.
	ErrCodeUnsupported
	// ErrCodeMissingAttribute: a required attribute (SOP Class/Instance,
	// Study/Series Instance UID, the meta Transfer Syntax UID excepted) is
	// absent or empty.
	ErrCodeMissingAttribute
	// ErrCodeTooLarge: the input, its inflated dataset or its element
	// count exceeds a [Limits] field, or [ParseStream] would have to hold
	// more than Limits.Buffer bytes to decide.
	ErrCodeTooLarge
	// ErrCodeTooDeep: sequences nest deeper than [Limits.MaxDepth].
	ErrCodeTooDeep
	// ErrCodeInternal: a bug: a panic was recovered while parsing.
	ErrCodeInternal
	// ErrCodeIO: [Read] or [ParseStream] could not read its input, or
	// ParseStream could not write its output; the reader's or writer's
	// error is available through errors.Unwrap.
	ErrCodeIO
	// ErrCodeNotDICOM: the input is not DICOM at all: no DICM prefix, and
	// no encoding reads a data element at its start (a text file, an
	// image, random bytes).
	ErrCodeNotDICOM
)

var codeNames = map[ErrorCode]string{
	ErrCodeTruncated:        "truncated",
	ErrCodeMalformed:        "malformed",
	ErrCodeUnsupported:      "unsupported",
	ErrCodeMissingAttribute: "missing attribute",
	ErrCodeTooLarge:         "too large",
	ErrCodeTooDeep:          "too deep",
	ErrCodeInternal:         "internal error",
	ErrCodeIO:               "read error",
	ErrCodeNotDICOM:         "not DICOM",
}

func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// Error is the only error type [Parse], [Read] and [ParseStream] return.
//
// Msg is written so that it can be logged or sent to a peer: it contains
// tags, offsets, lengths and transfer syntax UIDs, never attribute values,
// so no patient data can leak through it.
type Error struct {
	Code   ErrorCode
	Tag    uint32 // (group<<16 | element) of the element concerned, 0 if none
	Offset int64  // byte offset in the input where the problem was found, -1 if none
	Msg    string

	err error // underlying I/O error, for ErrCodeIO only
}

func (e *Error) Error() string {
	return "dicom: " + e.Code.String() + ": " + e.Msg
}

// Unwrap returns the reader's error for ErrCodeIO, nil otherwise.
func (e *Error) Unwrap() error { return e.err }

// CodeOf returns the code of the first *Error in err's chain, or 0 when
// there is none.
func CodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func newError(code ErrorCode, tag uint32, off int64, format string, args ...any) *Error {
	return &Error{Code: code, Tag: tag, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// tagString formats a tag the way DICOM documents do: (7FE0,0010).
func tagString(t uint32) string {
	return fmt.Sprintf("(%04X,%04X)", t>>16, t&0xFFFF)
}
