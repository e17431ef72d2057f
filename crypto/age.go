package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// MaxRecipients is the most recipients [Encrypt] and [Seal] accept, and
// the most recipient stanzas [Decrypt] and [Open] will look at. age itself
// allows 1,024 stanzas; with hybrid identities each failed stanza costs an
// ML-KEM decapsulation, so a hostile header of a thousand stanzas would
// cost ~0.1 s of CPU per message. Nobody addresses a study to 64 facilities
// at once.
const MaxRecipients = 64

// ageOverhead estimates ciphertext growth so buffers are allocated once.
func ageOverhead(n, recipients int) int {
	const chunk = 64 << 10
	return 16 + (n/chunk+1)*16 + 200 + recipients*1700
}

// Encrypt age-encrypts plaintext to the recipients. Post-quantum and
// classic recipients cannot be mixed, and a [StudyKey]'s recipient must be
// the only one (age refuses both). Callers cap sizes; the whole ciphertext
// is returned in one buffer.
func Encrypt(plaintext []byte, r ...age.Recipient) ([]byte, error) {
	if err := checkRecipients(r); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(len(plaintext) + ageOverhead(len(plaintext), len(r)))
	w, err := age.Encrypt(&buf, r...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// EncryptWriter returns a writer that age-encrypts what is written to it
// into dst, for plaintext too large to hold: the caller must Close it to
// finish the file. The same recipient rules as [Encrypt] apply.
func EncryptWriter(dst io.Writer, r ...age.Recipient) (io.WriteCloser, error) {
	if err := checkRecipients(r); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	w, err := age.Encrypt(dst, r...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return w, nil
}

func checkRecipients(r []age.Recipient) error {
	if len(r) == 0 {
		return errors.New("no recipients")
	}
	if len(r) > MaxRecipients {
		return fmt.Errorf("%d recipients, at most %d", len(r), MaxRecipients)
	}
	for i, x := range r {
		if x == nil {
			return fmt.Errorf("recipient %d is nil", i)
		}
	}
	return nil
}

// Decrypt decrypts a whole age file. It fails with [ErrNotForUs] (also
// wrapping *age.NoIdentityMatchError) when no identity matches, and with
// [ErrMalformed] for anything that does not parse or authenticate
// (including a study-key stanza that breaks the rules in studykey.go). The
// plaintext is never larger than the ciphertext, so the allocation is
// bounded by the caller's cap on len(ciphertext).
func Decrypt(ciphertext []byte, ids ...age.Identity) ([]byte, error) {
	return decrypt(ciphertext, -1, ids...)
}

// decrypt refuses plaintexts larger than limit (if limit >= 0) before
// allocating for them.
func decrypt(ciphertext []byte, limit int64, ids ...age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, errors.New("decrypt: no identities")
	}
	wrapped := make([]age.Identity, len(ids))
	for i, id := range ids {
		if id == nil {
			return nil, fmt.Errorf("decrypt: identity %d is nil", i)
		}
		wrapped[i] = stanzaLimit{id}
	}
	ra, size, err := age.DecryptReaderAt(bytes.NewReader(ciphertext), int64(len(ciphertext)), wrapped...)
	if err != nil {
		return nil, classifyAgeError(err)
	}
	if limit >= 0 && size > limit {
		return nil, fmt.Errorf("decrypt: plaintext of %d bytes exceeds limit %d: %w", size, limit, ErrMalformed)
	}
	if size > int64(len(ciphertext)) { // cannot happen; guards the allocation
		return nil, fmt.Errorf("decrypt: %w", ErrMalformed)
	}
	out := make([]byte, size)
	if n, err := ra.ReadAt(out, 0); err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		return nil, fmt.Errorf("decrypt: %w: %w", ErrMalformed, err)
	}
	return out, nil
}

func classifyAgeError(err error) error {
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return fmt.Errorf("decrypt: %w: %w", ErrNotForUs, err)
	}
	// Header parse errors quote the offending line; that is ciphertext
	// framing, not plaintext, so it is safe to keep.
	return fmt.Errorf("decrypt: %w: %w", ErrMalformed, err)
}

var errTooManyStanzas = fmt.Errorf("more than %d recipient stanzas", MaxRecipients)

// stanzaLimit bounds the work a hostile header can cause (see
// MaxRecipients). Its error is not age.ErrIncorrectIdentity, so age stops
// at once instead of trying the next identity.
type stanzaLimit struct{ age.Identity }

func (s stanzaLimit) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	if len(stanzas) > MaxRecipients {
		return nil, errTooManyStanzas
	}
	return s.Identity.Unwrap(stanzas)
}

// ArchiveKeySize is the size of the archive key: AES-256 for Badger.
const ArchiveKeySize = 32

// NewArchiveKey returns 32 random bytes for Badger's at-rest AES
// encryption. The node keeps it on disk only wrapped to its own recipient:
// WriteKeyFile(path, Encrypt(key, id.Recipient())) and, on start,
// Decrypt(ReadKeyFile(path), id.Box).
func NewArchiveKey() ([]byte, error) {
	k := make([]byte, ArchiveKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate archive key: %w", err)
	}
	return k, nil
}
