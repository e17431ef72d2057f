package crypto

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Study keys: format version 1.
//
// A study key is 32 bytes from a CSPRNG. Every DICOM instance of the study
// is an age file (age-encryption.org/v1) whose header holds exactly one
// recipient stanza of type "pacsnet-study". The key itself is only ever
// stored or sent inside age files sealed to a post-quantum hybrid
// (ML-KEM-768 + X25519) recipient: the node's own, or a grantee's in a
// manifest. A 256-bit symmetric key is no weaker against a quantum
// adversary than that hybrid wrapping, and wrapping a file key to it costs
// microseconds instead of the ~1 ms of an ML-KEM decapsulation.
//
// # Text form
//
// The key's text form is Bech32 (BIP 173, the checksum age uses for its
// own keys) with human-readable part "PACSNET-STUDY-KEY-", in upper case:
//
//	"PACSNET-STUDY-KEY-1" || 52 data characters || 6 checksum characters
//
// 77 characters in all. The data characters are the 32 key bytes, most
// significant bit first, in 5-bit groups; the last group carries 4 zero
// padding bits. The checksum is computed over the lower-case
// human-readable part, as BIP 173 requires. Parsers accept only this
// exact form: upper case, no surrounding whitespace, zero padding bits,
// valid checksum. Each key therefore has exactly one text form, so two
// text forms can be compared for key equality. A key of 32 zero bytes is
// refused: it only ever comes from a bug.
//
// # Recipient stanza
//
// Wrapping the 16-byte age file key to study key K:
//
//	salt     = 16 bytes from a CSPRNG, fresh for every file
//	wrapKey  = HKDF-SHA-256(IKM = K, salt = salt, info = "pacsnet-study-v1", L = 32)
//	body     = ChaCha20-Poly1305-Seal(key = wrapKey, nonce = 12 zero bytes,
//	                                  plaintext = file key, ad = empty)
//	stanza   = "-> pacsnet-study " || base64(salt) || "\n" || base64(body) || "\n"
//
// base64 is the standard alphabet without padding, as everywhere in age,
// so the single argument is 22 characters and the body 32 bytes (16 of
// wrapped key, 16 of tag). The zero nonce is safe because each wrapKey
// seals a single file key: it depends on a fresh 128-bit salt, so a
// repeated (key, nonce) pair needs two files under one study key with the
// same salt, a chance of about 2^-33 after 2^48 files.
//
// The stanza carries no key identifier. A node always knows which study
// key to try (the manifest or the study record names it), so an identifier
// would only let whoever sees ciphertexts (peers serving blocks, a stolen
// disk) link instances to each other and to the same study at another
// facility. With a random salt, two stanzas for the same key are
// indistinguishable from two stanzas for different keys.
//
// The stanza must be the only stanza in the header. [StudyKey]'s recipient
// enforces that when encrypting by returning a random age label (see
// [age.RecipientWithLabels]), so age refuses to mix it with any other
// recipient, including another study key's. age authenticates a file only
// as "made by someone who knew the file key"; alone, that means "made by a
// holder of the study key". Mixed with, say, an X25519 recipient, the
// X25519 key holder could forge instance files that the study key opens,
// and the file would lose its post-quantum protection. No pacsnet file
// needs two recipients. Labels only bind honest encryptors, so decryption
// enforces it too, as age's scrypt identity does.
//
// Unwrapping with key K, given the header's stanzas:
//
//  1. If no stanza has type "pacsnet-study", the key does not match
//     (age.ErrIncorrectIdentity; age tries the next identity).
//  2. If a "pacsnet-study" stanza is present and the header has any other
//     stanza, the file is malformed.
//  3. The stanza must have exactly one argument, which must be the
//     canonical unpadded base64 encoding of exactly 16 bytes, and a body of
//     exactly 32 bytes; otherwise the file is malformed.
//  4. Derive wrapKey as above and open the body. If authentication fails,
//     the key does not match (age.ErrIncorrectIdentity), so several study
//     keys can be offered at once. Otherwise the 16-byte plaintext is the
//     file key.
//
// "Malformed" errors are not age.ErrIncorrectIdentity, so age stops at
// once; [Decrypt] reports them as [ErrMalformed] and a key mismatch as
// [ErrNotForUs]. ChaCha20-Poly1305 is not key-committing, so a hostile
// stanza could be made to open under two chosen keys; that does not
// matter here because the file key it yields must still verify the age
// header MAC and the payload, and instance digests are checked against
// signed manifests.
const (
	studyKeySize     = 32
	studyKeyHRP      = "PACSNET-STUDY-KEY-"
	studyKeyTextLen  = len(studyKeyHRP) + 1 + (studyKeySize*8+4)/5 + 6 // 77
	studyStanzaType  = "pacsnet-study"
	studyHKDFInfo    = "pacsnet-study-v1"
	studySaltSize    = 16
	studyFileKeySize = 16 // age's file key size
	studyBodySize    = studyFileKeySize + chacha20poly1305.Overhead
)

// StudyKey is a study's 256-bit symmetric key; instances are age-encrypted
// to it (format at the top of studykey.go). *StudyKey is an age.Identity,
// usable with [Decrypt] and age.Decrypt; [StudyKey.Recipient] is the
// matching age.Recipient.
//
// String returns the secret text form, for storing the key (wrapped) and
// putting it in manifests. Formatting the key with fmt verbs or logging it
// with slog prints a redacted placeholder instead, so a stray %v in a log
// line cannot leak it.
type StudyKey struct {
	key [studyKeySize]byte
}

var (
	_ age.Identity            = (*StudyKey)(nil)
	_ age.Recipient           = studyRecipient{}
	_ age.RecipientWithLabels = studyRecipient{}
	_ fmt.Formatter           = (*StudyKey)(nil)
	_ slog.LogValuer          = (*StudyKey)(nil)
)

// NewStudyKey generates a study key from crypto/rand. Sharing the study
// means sharing this key inside a sealed manifest; destroying every copy
// of it shreds the study.
func NewStudyKey() (*StudyKey, error) {
	k := new(StudyKey)
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, fmt.Errorf("generate study key: %w", err)
	}
	if k.isZero() { // only with a broken random source
		return nil, errors.New("generate study key: random source returned zeros")
	}
	return k, nil
}

// ParseStudyKey parses the text form returned by [StudyKey.String]
// ("PACSNET-STUDY-KEY-1…", 77 characters). It is strict: whitespace, lower
// case, a bad checksum or any other deviation from the one canonical
// encoding is refused. Errors wrap [ErrMalformed] and never quote the
// input, which is secret.
func ParseStudyKey(s string) (*StudyKey, error) {
	b, err := decodeBech32Upper(s, studyKeyHRP, studyKeySize)
	if err != nil {
		return nil, fmt.Errorf("parse study key: %w: %w", err, ErrMalformed)
	}
	k := new(StudyKey)
	copy(k.key[:], b)
	if k.isZero() {
		return nil, fmt.Errorf("parse study key: all-zero key: %w", ErrMalformed)
	}
	return k, nil
}

// String returns the key's secret text form (see the top of studykey.go).
// It returns "" for a nil key.
func (k *StudyKey) String() string {
	if k == nil {
		return ""
	}
	return encodeBech32Upper(studyKeyHRP, k.key[:])
}

// Format redacts the key for every fmt verb; use String for the real
// text form.
func (k *StudyKey) Format(f fmt.State, verb rune) {
	_, _ = f.Write([]byte("PACSNET-STUDY-KEY-REDACTED"))
}

// LogValue redacts the key in slog output.
func (k *StudyKey) LogValue() slog.Value {
	return slog.StringValue("PACSNET-STUDY-KEY-REDACTED")
}

// Recipient returns the age.Recipient that encrypts to k. It must be the
// only recipient of a file: age refuses to mix it with any other (see the
// top of studykey.go). It has no String method, so [Seal] refuses it:
// envelopes go to node identities, never to study keys.
func (k *StudyKey) Recipient() age.Recipient {
	return studyRecipient{k}
}

func (k *StudyKey) isZero() bool {
	return k.key == [studyKeySize]byte{}
}

// wrapKey derives the per-file ChaCha20-Poly1305 key.
func (k *StudyKey) wrapKey(salt []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, k.key[:], salt, studyHKDFInfo, chacha20poly1305.KeySize)
}

var (
	errStudyNotAlone = fmt.Errorf("%s stanza is not the only recipient stanza", studyStanzaType)
	errStudyStanza   = fmt.Errorf("invalid %s stanza", studyStanzaType)
)

// Unwrap implements age.Identity; the rules are at the top of
// studykey.go. It never panics, whatever the stanzas hold.
func (k *StudyKey) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if k == nil || k.isZero() {
		return nil, errors.New("unwrap: nil or zero study key")
	}
	var own *age.Stanza
	for _, s := range stanzas {
		if s == nil || s.Type != studyStanzaType {
			continue
		}
		if len(stanzas) != 1 {
			return nil, errStudyNotAlone
		}
		own = s
	}
	if own == nil {
		return nil, fmt.Errorf("%w: not encrypted to a study key", age.ErrIncorrectIdentity)
	}
	if len(own.Args) != 1 {
		return nil, fmt.Errorf("%w: %d arguments, want 1", errStudyStanza, len(own.Args))
	}
	salt, ok := decodeSalt(own.Args[0])
	if !ok {
		return nil, fmt.Errorf("%w: salt is not %d bytes of canonical base64", errStudyStanza, studySaltSize)
	}
	if len(own.Body) != studyBodySize {
		return nil, fmt.Errorf("%w: body of %d bytes, want %d", errStudyStanza, len(own.Body), studyBodySize)
	}
	wk, err := k.wrapKey(salt)
	if err != nil { // cannot happen: the output length is valid
		return nil, fmt.Errorf("unwrap: %w", err)
	}
	aead, err := chacha20poly1305.New(wk)
	if err != nil { // cannot happen: the key size is right
		return nil, fmt.Errorf("unwrap: %w", err)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	fileKey, err := aead.Open(nil, nonce[:], own.Body, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: wrong study key", age.ErrIncorrectIdentity)
	}
	return fileKey, nil
}

// decodeSalt accepts only the canonical unpadded base64 of exactly
// studySaltSize bytes. The length check comes first so hostile arguments
// cost nothing; the re-encoding check rejects the forms Go's decoder
// tolerates (CR/LF anywhere, non-zero trailing bits), so a stanza has a
// single encoding.
func decodeSalt(arg string) ([]byte, bool) {
	enc := base64.RawStdEncoding
	if len(arg) != enc.EncodedLen(studySaltSize) {
		return nil, false
	}
	salt, err := enc.DecodeString(arg)
	if err != nil || len(salt) != studySaltSize || enc.EncodeToString(salt) != arg {
		return nil, false
	}
	return salt, true
}

// studyRecipient wraps file keys to a StudyKey. It holds a pointer, not the
// key bytes, so printing it shows an address rather than the secret.
type studyRecipient struct{ k *StudyKey }

// Wrap implements age.Recipient. age calls WrapWithLabels instead; Wrap
// exists for callers that build headers themselves.
func (r studyRecipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	if r.k == nil || r.k.isZero() {
		return nil, errors.New("wrap: nil or zero study key")
	}
	if len(fileKey) != studyFileKeySize {
		return nil, fmt.Errorf("wrap: file key of %d bytes, want %d", len(fileKey), studyFileKeySize)
	}
	salt := make([]byte, studySaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	wk, err := r.k.wrapKey(salt)
	if err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	aead, err := chacha20poly1305.New(wk)
	if err != nil {
		return nil, fmt.Errorf("wrap: %w", err)
	}
	var nonce [chacha20poly1305.NonceSize]byte
	return []*age.Stanza{{
		Type: studyStanzaType,
		Args: []string{base64.RawStdEncoding.EncodeToString(salt)},
		Body: aead.Seal(nil, nonce[:], fileKey, nil),
	}}, nil
}

// WrapWithLabels implements age.RecipientWithLabels with a fresh random
// label, so age refuses to put any other recipient in the same file (why:
// top of studykey.go).
func (r studyRecipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	s, err := r.Wrap(fileKey)
	if err != nil {
		return nil, nil, err
	}
	var label [16]byte
	if _, err := rand.Read(label[:]); err != nil {
		return nil, nil, fmt.Errorf("wrap: %w", err)
	}
	return s, []string{"pacsnet-study-alone-" + hex.EncodeToString(label[:])}, nil
}

// Bech32 (BIP 173), upper-case only, for fixed-size byte strings.

const bech32Upper = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range gen {
			if top>>i&1 == 1 {
				chk ^= g
			}
		}
	}
	return chk
}

// bech32Values is the checksummed input: the expanded lower-case HRP
// followed by the 5-bit data values.
func bech32Values(hrp string, data5 []byte) []byte {
	h := strings.ToLower(hrp)
	v := make([]byte, 0, 2*len(h)+1+len(data5)+6)
	for i := 0; i < len(h); i++ {
		v = append(v, h[i]>>5)
	}
	v = append(v, 0)
	for i := 0; i < len(h); i++ {
		v = append(v, h[i]&31)
	}
	return append(v, data5...)
}

// bech32Checksum returns the six 5-bit checksum values for hrp and data5.
func bech32Checksum(hrp string, data5 []byte) [6]byte {
	mod := bech32Polymod(append(bech32Values(hrp, data5), 0, 0, 0, 0, 0, 0)) ^ 1
	var c [6]byte
	for i := range c {
		c[i] = byte(mod>>(5*(5-i))) & 31
	}
	return c
}

// encodeBech32Upper encodes data under an upper-case hrp.
func encodeBech32Upper(hrp string, data []byte) string {
	data5 := make([]byte, 0, (len(data)*8+4)/5)
	var acc uint32
	var bits uint
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			data5 = append(data5, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		data5 = append(data5, byte(acc<<(5-bits))&31)
	}
	var sb strings.Builder
	sb.Grow(len(hrp) + 1 + len(data5) + 6)
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, v := range data5 {
		sb.WriteByte(bech32Upper[v])
	}
	for _, v := range bech32Checksum(hrp, data5) {
		sb.WriteByte(bech32Upper[v])
	}
	return sb.String()
}

// decodeBech32Upper decodes exactly n bytes encoded under the upper-case
// hrp, accepting only the form encodeBech32Upper produces. Its errors
// never quote s.
func decodeBech32Upper(s, hrp string, n int) ([]byte, error) {
	nData5 := (n*8 + 4) / 5
	if len(s) != len(hrp)+1+nData5+6 {
		return nil, fmt.Errorf("%d characters, want %d", len(s), len(hrp)+1+nData5+6)
	}
	if s[:len(hrp)+1] != hrp+"1" {
		return nil, fmt.Errorf("prefix is not %s1", hrp)
	}
	values := make([]byte, 0, nData5+6)
	for i := len(hrp) + 1; i < len(s); i++ {
		v := strings.IndexByte(bech32Upper, s[i])
		if v < 0 {
			return nil, errors.New("invalid character (only upper-case Bech32)")
		}
		values = append(values, byte(v))
	}
	if bech32Polymod(bech32Values(hrp, values)) != 1 {
		return nil, errors.New("bad checksum")
	}
	out := make([]byte, 0, n)
	var acc uint32
	var bits uint
	for _, v := range values[:nData5] {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 {
		return nil, errors.New("non-zero padding bits")
	}
	return out, nil
}
