package crypto

import "errors"

var (
	// ErrInsecureKeyFile is returned by [ReadKeyFile] when the file is not a
	// regular file or its mode grants any access to group or others
	// (mode & 0o077 != 0). The error message names the path and the mode.
	ErrInsecureKeyFile = errors.New("insecure key file")

	// ErrBadSignature is returned when a signature does not verify for the
	// given key (or peer) and domain, including when the key is not Ed25519.
	ErrBadSignature = errors.New("bad signature")

	// ErrNotForUs is returned when none of the supplied identities can
	// decrypt an age file, or when a sealed envelope was not addressed to the
	// opening identity (for example, it was re-encrypted by a recipient and
	// forwarded). For a plain age mismatch it also wraps age's
	// *age.NoIdentityMatchError.
	ErrNotForUs = errors.New("not encrypted to any of our identities")

	// ErrMalformed is returned when input does not parse: a corrupt or
	// truncated age file, an age header with too many recipients, an
	// envelope that does not decode, or a decrypted payload larger than the
	// caller's limit.
	ErrMalformed = errors.New("malformed input")

	// ErrWrongDomain is returned by [Open] when the envelope was sealed for a
	// different domain than the caller expects. It is distinct from
	// [ErrBadSignature]: the signature may be fine, but the message was made
	// for another purpose and must not be used for this one.
	ErrWrongDomain = errors.New("envelope domain mismatch")
)
