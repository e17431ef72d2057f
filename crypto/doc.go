// Package crypto holds pacsnet's key material and the few cryptographic
// constructions the rest of the node is built from.
//
// # What it provides
//
//   - Key files: [WriteKeyFile] and [ReadKeyFile] create secrets with mode
//     0600 and refuse to read secrets that group or others could read.
//   - A node's long-term [Identity]: an Ed25519 libp2p key (whose public key
//     is the peer ID) and a post-quantum hybrid age identity (ML-KEM-768 +
//     X25519, recipients "age1pq1…").
//   - Domain-separated signatures: [Sign], [Verify], [VerifyPeer]. Every
//     domain pacsnet signs under is a constant in sign.go, and only there:
//     [DomainInvite], [DomainManifest], [DomainGrant], [DomainRevocation],
//     and "envelope", which only [Seal] may use.
//   - Whole-buffer age encryption: [Encrypt], [Decrypt].
//   - Sealed envelopes: [Seal] signs inside and encrypts outside, because age
//     has no sender authentication; [Open] undoes it and names the signer.
//   - Study keys ([StudyKey], [NewStudyKey], [ParseStudyKey]): one 256-bit
//     symmetric key per study, used as a custom age recipient and identity
//     (stanza "pacsnet-study"; exact format at the top of studykey.go).
//     Every instance is encrypted to it. It is symmetric because it only
//     ever travels inside files sealed to hybrid recipients, so it is as
//     post-quantum safe as they are, while saving an ML-KEM operation
//     (~0.4-1 ms) on every instance encrypted or decrypted. A study key's
//     recipient must be a file's only recipient.
//   - The archive key ([NewArchiveKey]).
//
// # Errors
//
// [ErrNotForUs] means none of the identities could decrypt; [ErrMalformed]
// means the input does not parse (corrupt or truncated age file, or an
// envelope that does not decode); [ErrBadSignature] means a signature does
// not verify; [ErrWrongDomain] means a valid-looking envelope was made for
// another purpose; [ErrInsecureKeyFile] means a key file's permissions or
// type are unsafe. Errors never contain key material or payload bytes,
// and a [StudyKey] prints redacted through fmt and slog (only its String
// method gives the secret text form).
//
// # Imports
//
// This package must not import any other pacsnet package: everything else
// depends on it, and keeping it a leaf keeps the trusted code small and
// reviewable. It must not open network connections or use a global logger.
// The layering test in internal/deptest enforces the imports.
package crypto
