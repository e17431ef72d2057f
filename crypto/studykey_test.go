package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

func mustStudyKey(t testing.TB) *StudyKey {
	t.Helper()
	k, err := NewStudyKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixedStudyKey is a test-only key with known bytes, so fuzz corpus
// entries stay meaningful across runs.
func fixedStudyKey() *StudyKey {
	k := new(StudyKey)
	for i := range k.key {
		k.key[i] = byte(i + 1)
	}
	return k
}

// unlabeled hides WrapWithLabels, so age lets it be mixed with other
// recipients: it plays a careless or hostile encryptor.
type unlabeled struct{ r age.Recipient }

func (u unlabeled) Wrap(fk []byte) ([]*age.Stanza, error) { return u.r.Wrap(fk) }

// rawRecipient writes the given stanzas verbatim into a header.
type rawRecipient []*age.Stanza

func (r rawRecipient) Wrap([]byte) ([]*age.Stanza, error) { return r, nil }

func TestStudyKeyRoundTrip(t *testing.T) {
	k := mustStudyKey(t)
	parsed, err := ParseStudyKey(k.String())
	if err != nil {
		t.Fatalf("ParseStudyKey: %v", err)
	}
	if parsed.String() != k.String() {
		t.Fatal("parsed key has a different text form")
	}
	other := mustStudyKey(t)
	if other.String() == k.String() {
		t.Fatal("two new keys are equal")
	}
	for _, size := range []int{0, 1, 64 << 10, 512 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			plain := bytes.Repeat([]byte("DICM"), size/4)
			ct, err := Encrypt(plain, k.Recipient())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decrypt(ct, parsed)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("Decrypt: %v", err)
			}
			// age itself accepts *StudyKey as an Identity.
			r, err := age.Decrypt(bytes.NewReader(ct), k)
			if err != nil {
				t.Fatalf("age.Decrypt: %v", err)
			}
			var buf bytes.Buffer
			if _, err := buf.ReadFrom(r); err != nil || !bytes.Equal(buf.Bytes(), plain) {
				t.Fatalf("age.Decrypt read: %v", err)
			}
			// Several identities: the wrong one is skipped.
			if got, err := Decrypt(ct, other, mustX25519(t), parsed); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("Decrypt with several identities: %v", err)
			}
		})
	}
}

func TestStudyKeyWrongKey(t *testing.T) {
	k, other := mustStudyKey(t), mustStudyKey(t)
	ct, err := Encrypt([]byte("pixel data"), k.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	for name, ids := range map[string][]age.Identity{
		"other study key":    {other},
		"node identity":      {mustIdentity(t).Box},
		"two wrong":          {other, mustX25519(t)},
		"study key, no file": {fixedStudyKey()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decrypt(ct, ids...)
			if !errors.Is(err, ErrNotForUs) {
				t.Fatalf("err = %v, want ErrNotForUs", err)
			}
			var nomatch *age.NoIdentityMatchError
			if !errors.As(err, &nomatch) || !errors.Is(err, age.ErrIncorrectIdentity) {
				t.Fatalf("err = %v does not wrap age's no-match errors", err)
			}
			if errors.Is(err, ErrMalformed) {
				t.Fatal("a wrong key is reported as malformed")
			}
		})
	}
	// A study key does not open files made for a node identity either.
	id := mustIdentity(t)
	ct, err = Encrypt([]byte("x"), id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decrypt(ct, k); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("hybrid file, study key: err = %v, want ErrNotForUs", err)
	}
}

func TestStudyKeyString(t *testing.T) {
	k := mustStudyKey(t)
	s := k.String()
	if studyKeyTextLen != 77 || len(s) != studyKeyTextLen || !strings.HasPrefix(s, "PACSNET-STUDY-KEY-1") || strings.ToUpper(s) != s {
		t.Fatalf("text form %d chars, prefix/case wrong", len(s))
	}
	if (*StudyKey)(nil).String() != "" {
		t.Fatal("nil key has a text form")
	}
	secret := s[len("PACSNET-STUDY-KEY-1"):]
	t.Run("fmt redacts", func(t *testing.T) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			out := fmt.Sprintf(verb, k)
			if strings.Contains(out, secret) || strings.Contains(strings.ToUpper(out), secret) || !strings.Contains(out, "REDACTED") {
				t.Errorf("%s prints %q", verb, out)
			}
		}
		// Wrapped in a struct, or as its recipient: no key bytes either.
		for _, v := range []any{struct{ K *StudyKey }{k}, k.Recipient(), []*StudyKey{k}} {
			out := fmt.Sprintf("%v %+v %#v", v, v, v)
			if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprint(k.key[:])) {
				t.Errorf("%T prints the key: %s", v, out)
			}
		}
	})
	t.Run("slog redacts", func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		log.Info("study", "key", k)
		log.Info("study", slog.Any("key", k))
		if strings.Contains(buf.String(), secret) || !strings.Contains(buf.String(), "REDACTED") {
			t.Fatalf("slog output: %s", buf.String())
		}
	})
}

// TestBech32 checks the encoder against BIP 173's test vectors and
// against age's own key encoding, so the text form really is Bech32.
func TestBech32(t *testing.T) {
	for _, v := range []string{
		"A12UEL5L",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	} {
		l := strings.ToLower(v)
		sep := strings.LastIndexByte(l, '1')
		var data5 []byte
		for _, c := range l[sep+1 : len(l)-6] {
			data5 = append(data5, byte(strings.IndexRune(strings.ToLower(bech32Upper), c)))
		}
		c := bech32Checksum(l[:sep], data5)
		var got string
		for _, x := range c {
			got += string(strings.ToLower(bech32Upper)[x])
		}
		if got != l[len(l)-6:] {
			t.Errorf("%s: checksum %s", v, got)
		}
	}
	x := mustX25519(t)
	b, err := decodeBech32Upper(x.String(), "AGE-SECRET-KEY-", 32)
	if err != nil {
		t.Fatalf("decode age identity: %v", err)
	}
	if encodeBech32Upper("AGE-SECRET-KEY-", b) != x.String() {
		t.Fatal("re-encoding an age identity differs")
	}
}

func TestParseStudyKeyStrict(t *testing.T) {
	k := fixedStudyKey()
	good := k.String()
	body := good[len("PACSNET-STUDY-KEY-1"):]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'Q' {
			b[i] = 'P'
		} else {
			b[i] = 'Q'
		}
		return string(b)
	}
	// A valid checksum over non-zero padding bits: the last data value
	// carries 4 padding bits.
	badPad := func() string {
		var data5 []byte
		for _, c := range body[:52] {
			data5 = append(data5, byte(strings.IndexRune(bech32Upper, c)))
		}
		data5[51] |= 1
		s := studyKeyHRP + "1"
		for _, v := range data5 {
			s += string(bech32Upper[v])
		}
		for _, v := range bech32Checksum(studyKeyHRP, data5) {
			s += string(bech32Upper[v])
		}
		return s
	}()
	x := mustX25519(t)
	hy := mustIdentity(t).Box
	tests := []struct{ name, s string }{
		{"empty", ""},
		{"leading space", " " + good},
		{"trailing newline", good + "\n"},
		{"lower case", strings.ToLower(good)},
		{"lower-case data", studyKeyHRP + "1" + strings.ToLower(body)},
		{"mixed case", good[:40] + strings.ToLower(good[40:])},
		{"checksum char flipped", flip(good, len(good)-1)},
		{"data char flipped", flip(good, 30)},
		{"truncated", good[:len(good)-1]},
		{"extra char", good + "Q"},
		{"wrong prefix", "PACSNET-STUDY-KEX-1" + body},
		{"no separator", studyKeyHRP + "Q" + body},
		{"non-zero padding", badPad},
		{"all-zero key", encodeBech32Upper(studyKeyHRP, make([]byte, 32))},
		{"31-byte key", encodeBech32Upper(studyKeyHRP, bytes.Repeat([]byte{9}, 31))},
		{"33-byte key", encodeBech32Upper(studyKeyHRP, bytes.Repeat([]byte{9}, 33))},
		{"invalid char B", good[:30] + "B" + good[31:]},
		{"invalid char 1", good[:30] + "1" + good[31:]},
		{"non-ASCII", good[:30] + "é" + good[32:]},
		{"NUL", good[:30] + "\x00" + good[31:]},
		{"X25519 identity", x.String()},
		{"hybrid identity (old study key)", hy.String()},
		{"huge", strings.Repeat("PACSNET-STUDY-KEY-1", 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStudyKey(tt.s)
			if !errors.Is(err, ErrMalformed) || got != nil {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if len(tt.s) > 24 && strings.Contains(err.Error(), tt.s[19:24]) {
				t.Fatalf("error quotes the input: %v", err)
			}
		})
	}
	if _, err := ParseStudyKey(good); err != nil {
		t.Fatalf("the good key: %v", err)
	}
}

// TestStudyKeyHeader checks that a file for a study key has one small,
// symmetric stanza: no ML-KEM or X25519 work, and nothing linking two
// files to the same key.
func TestStudyKeyHeader(t *testing.T) {
	k := mustStudyKey(t)
	stanzas := func() []string {
		ct, err := Encrypt([]byte("instance"), k.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := age.ExtractHeader(bytes.NewReader(ct))
		if err != nil {
			t.Fatal(err)
		}
		if len(hdr) > 160 {
			t.Errorf("header of %d bytes", len(hdr))
		}
		lines := strings.Split(string(hdr), "\n")
		if lines[0] != "age-encryption.org/v1" {
			t.Fatalf("intro %q", lines[0])
		}
		var out []string
		for i, l := range lines {
			if strings.HasPrefix(l, "-> ") {
				out = append(out, l, lines[i+1])
			}
			if strings.Contains(l, "X25519") || strings.Contains(l, "mlkem") {
				t.Errorf("asymmetric stanza: %q", l)
			}
		}
		return out
	}
	a, b := stanzas(), stanzas()
	if len(a) != 2 {
		t.Fatalf("%d stanzas, want 1: %q", len(a)/2, a)
	}
	f := strings.Fields(a[0])
	if len(f) != 3 || f[1] != "pacsnet-study" || len(f[2]) != 22 {
		t.Fatalf("stanza line %q", a[0])
	}
	if body, err := base64.RawStdEncoding.DecodeString(a[1]); err != nil || len(body) != 32 {
		t.Fatalf("stanza body %q: %v", a[1], err)
	}
	if a[0] == b[0] || a[1] == b[1] {
		t.Fatal("two files to the same key share salt or wrapped key")
	}
}

func TestStudyKeyRefusesMixing(t *testing.T) {
	k := mustStudyKey(t)
	tests := []struct {
		name string
		r    []age.Recipient
	}{
		{"with a hybrid recipient", []age.Recipient{k.Recipient(), mustIdentity(t).Recipient()}},
		{"after a hybrid recipient", []age.Recipient{mustIdentity(t).Recipient(), k.Recipient()}},
		{"with an X25519 recipient", []age.Recipient{k.Recipient(), mustX25519(t).Recipient()}},
		{"with another study key", []age.Recipient{k.Recipient(), mustStudyKey(t).Recipient()}},
		{"with itself", []age.Recipient{k.Recipient(), k.Recipient()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encrypt([]byte("x"), tt.r...); err == nil {
				t.Fatal("encrypted")
			}
		})
	}
	t.Run("not for envelopes", func(t *testing.T) {
		if _, err := Seal(mustIdentity(t).Sign, "d", []byte("x"), k.Recipient()); err == nil {
			t.Fatal("sealed to a study key")
		}
	})
	t.Run("mixed file does not decrypt", func(t *testing.T) {
		// Made by an encryptor that ignores labels: the X25519 holder
		// could forge files the study key opens, so it is refused.
		x := mustX25519(t)
		for _, rs := range [][]age.Recipient{
			{unlabeled{k.Recipient()}, x.Recipient()},
			{x.Recipient(), unlabeled{k.Recipient()}},
			{unlabeled{k.Recipient()}, unlabeled{k.Recipient()}},
		} {
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, rs...)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("x"))
			w.Close()
			if _, err := Decrypt(buf.Bytes(), k); !errors.Is(err, ErrMalformed) || !errors.Is(err, errStudyNotAlone) {
				t.Fatalf("err = %v, want ErrMalformed (not alone)", err)
			}
		}
	})
}

// TestDecryptStanzaLimitStudyKey: the MaxRecipients cap and the error
// mapping hold for the custom stanza.
func TestDecryptStanzaLimitStudyKey(t *testing.T) {
	k := mustStudyKey(t)
	file := func(nX25519 int, withStudy bool) []byte {
		var rs []age.Recipient
		for range nX25519 {
			rs = append(rs, mustX25519(t).Recipient())
		}
		if withStudy {
			rs = append(rs, unlabeled{k.Recipient()})
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, rs...)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		w.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name      string
		n         int
		withStudy bool
		want      error
	}{
		{"64 others", MaxRecipients, false, ErrNotForUs},
		{"65 others", MaxRecipients + 1, false, errTooManyStanzas},
		{"63 others and ours", MaxRecipients - 1, true, errStudyNotAlone},
		{"64 others and ours", MaxRecipients, true, errTooManyStanzas},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decrypt(file(tt.n, tt.withStudy), k)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != ErrNotForUs && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

// validStanza wraps fileKey to k.
func validStanza(t testing.TB, k *StudyKey, fileKey []byte) *age.Stanza {
	t.Helper()
	s, err := k.Recipient().Wrap(fileKey)
	if err != nil || len(s) != 1 {
		t.Fatalf("wrap: %d stanzas, %v", len(s), err)
	}
	return s[0]
}

func TestStudyKeyUnwrapHostile(t *testing.T) {
	k := fixedStudyKey()
	fileKey := bytes.Repeat([]byte{0x42}, 16)
	good := validStanza(t, k, fileKey)
	salt := good.Args[0]
	with := func(args []string, body []byte) *age.Stanza {
		return &age.Stanza{Type: "pacsnet-study", Args: args, Body: body}
	}
	xs, err := mustX25519(t).Recipient().Wrap(fileKey)
	if err != nil {
		t.Fatal(err)
	}
	x25519 := xs[0]
	// Salt with the same 16 bytes but non-zero trailing bits.
	// The last of 22 characters carries 2 data bits and 4 zero padding
	// bits, so the next alphabet letter sets a padding bit.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	saltBits := salt[:21] + string(alphabet[strings.IndexByte(alphabet, salt[21])+1])

	const (
		incorrect = iota // wraps age.ErrIncorrectIdentity
		malformed        // any other error
	)
	tests := []struct {
		name    string
		stanzas []*age.Stanza
		want    int
	}{
		{"nil list", nil, incorrect},
		{"empty list", []*age.Stanza{}, incorrect},
		{"nil stanza", []*age.Stanza{nil}, incorrect},
		{"X25519 only", []*age.Stanza{x25519}, incorrect},
		{"similar type", []*age.Stanza{{Type: "pacsnet-study-v2", Args: good.Args, Body: good.Body}}, incorrect},
		{"upper-case type", []*age.Stanza{{Type: "PACSNET-STUDY", Args: good.Args, Body: good.Body}}, incorrect},
		{"no args", []*age.Stanza{with(nil, good.Body)}, malformed},
		{"two args", []*age.Stanza{with([]string{salt, salt}, good.Body)}, malformed},
		{"key ID arg", []*age.Stanza{with([]string{salt, "id"}, good.Body)}, malformed},
		{"empty salt", []*age.Stanza{with([]string{""}, good.Body)}, malformed},
		{"short salt", []*age.Stanza{with([]string{base64.RawStdEncoding.EncodeToString(make([]byte, 15))}, good.Body)}, malformed},
		{"long salt", []*age.Stanza{with([]string{base64.RawStdEncoding.EncodeToString(make([]byte, 17))}, good.Body)}, malformed},
		{"padded salt", []*age.Stanza{with([]string{base64.StdEncoding.EncodeToString(make([]byte, 16))}, good.Body)}, malformed},
		{"URL alphabet", []*age.Stanza{with([]string{"____________________-A"}, good.Body)}, malformed},
		{"salt trailing bits", []*age.Stanza{with([]string{saltBits}, good.Body)}, malformed},
		{"salt with newline", []*age.Stanza{with([]string{salt[:10] + "\n" + salt[11:]}, good.Body)}, malformed},
		{"huge salt", []*age.Stanza{with([]string{strings.Repeat("A", 1<<20)}, good.Body)}, malformed},
		{"empty body", []*age.Stanza{with(good.Args, nil)}, malformed},
		{"short body", []*age.Stanza{with(good.Args, good.Body[:31])}, malformed},
		{"long body", []*age.Stanza{with(good.Args, append(bytes.Clone(good.Body), 0))}, malformed},
		{"huge body", []*age.Stanza{with(good.Args, make([]byte, 1<<20))}, malformed},
		{"garbage body", []*age.Stanza{with(good.Args, bytes.Repeat([]byte{0xAA}, 32))}, incorrect},
		{"tag flipped", []*age.Stanza{with(good.Args, append(bytes.Clone(good.Body[:31]), good.Body[31]^1))}, incorrect},
		{"other salt", []*age.Stanza{with([]string{base64.RawStdEncoding.EncodeToString(make([]byte, 16))}, good.Body)}, incorrect},
		{"other key", []*age.Stanza{validStanza(t, mustStudyKey(t), fileKey)}, incorrect},
		{"ours and X25519", []*age.Stanza{good, x25519}, malformed},
		{"X25519 and ours", []*age.Stanza{x25519, good}, malformed},
		{"ours twice", []*age.Stanza{good, good}, malformed},
		{"ours and nil", []*age.Stanza{good, nil}, malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Unwrap(tt.stanzas)
			if err == nil || got != nil {
				t.Fatalf("unwrapped: %x, %v", got, err)
			}
			if isIncorrect := errors.Is(err, age.ErrIncorrectIdentity); isIncorrect != (tt.want == incorrect) {
				t.Fatalf("err = %v, incorrect-identity %v", err, isIncorrect)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error of %d bytes (quotes input?)", len(err.Error()))
			}
			// The same stanzas in a real file, through Decrypt.
			for _, s := range tt.stanzas {
				if s == nil || strings.ContainsAny(strings.Join(s.Args, ""), "\n") || len(s.Args) > 0 && s.Args[0] == "" {
					return // age cannot write this header
				}
			}
			if len(tt.stanzas) == 0 {
				return
			}
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, rawRecipient(tt.stanzas))
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("x"))
			w.Close()
			_, err = Decrypt(buf.Bytes(), k)
			want := map[int]error{incorrect: ErrNotForUs, malformed: ErrMalformed}[tt.want]
			if !errors.Is(err, want) {
				t.Fatalf("Decrypt: err = %v, want %v", err, want)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		got, err := k.Unwrap([]*age.Stanza{good})
		if err != nil || !bytes.Equal(got, fileKey) {
			t.Fatalf("Unwrap: %x, %v", got, err)
		}
	})
}

func TestStudyKeyNilAndZero(t *testing.T) {
	good := validStanza(t, fixedStudyKey(), make([]byte, 16))
	for name, k := range map[string]*StudyKey{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			if _, err := k.Unwrap([]*age.Stanza{good}); err == nil {
				t.Fatal("unwrapped")
			}
			if _, err := k.Recipient().Wrap(make([]byte, 16)); err == nil {
				t.Fatal("wrapped")
			}
			if _, err := Encrypt([]byte("x"), k.Recipient()); err == nil {
				t.Fatal("encrypted")
			}
			_ = fmt.Sprint(k)
		})
	}
	for _, n := range []int{0, 15, 17, 32} {
		if _, err := fixedStudyKey().Recipient().Wrap(make([]byte, n)); err == nil {
			t.Errorf("wrapped a %d-byte file key", n)
		}
	}
}

// FuzzStudyKeyUnwrap builds one or two stanzas from the input and hands
// them to a fixed key's Unwrap. It must never panic, must only succeed on
// a single well-formed stanza whose body is exactly the sealed file key
// (so success implies the stanza was made with the key), and must report
// stanzas of other types as a mismatch, not as an error.
func FuzzStudyKeyUnwrap(f *testing.F) {
	k := fixedStudyKey()
	good := validStanza(f, k, bytes.Repeat([]byte{7}, 16))
	f.Add("pacsnet-study", good.Args[0], "", good.Body, false)
	f.Add("pacsnet-study", good.Args[0], "x", good.Body, false)
	f.Add("pacsnet-study", good.Args[0], "", good.Body, true)
	f.Add("pacsnet-study", good.Args[0][:20], "", good.Body, false)
	f.Add("pacsnet-study", good.Args[0], "", good.Body[:31], false)
	f.Add("X25519", good.Args[0], "", good.Body, false)
	f.Add("", "", "", []byte{}, true)
	f.Fuzz(func(t *testing.T, typ, arg, extraArg string, body []byte, second bool) {
		s := &age.Stanza{Type: typ, Args: []string{arg}, Body: body}
		if extraArg != "" {
			s.Args = append(s.Args, extraArg)
		}
		stanzas := []*age.Stanza{s}
		if second {
			stanzas = append(stanzas, &age.Stanza{Type: "X25519", Args: []string{arg}, Body: body})
		}
		fileKey, err := k.Unwrap(stanzas)
		if err != nil {
			if fileKey != nil {
				t.Fatal("file key returned with an error")
			}
			if typ != "pacsnet-study" && !errors.Is(err, age.ErrIncorrectIdentity) {
				t.Fatalf("foreign stanza: err = %v, want a mismatch", err)
			}
			return
		}
		if len(stanzas) != 1 || typ != "pacsnet-study" || len(s.Args) != 1 || len(fileKey) != 16 {
			t.Fatalf("accepted %d stanzas of type %q with %d args, file key %d bytes", len(stanzas), typ, len(s.Args), len(fileKey))
		}
		salt, ok := decodeSalt(arg)
		if !ok {
			t.Fatal("accepted a bad salt")
		}
		wk, err := k.wrapKey(salt)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := chacha20poly1305.New(wk)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(aead.Seal(nil, make([]byte, 12), fileKey, nil), body) {
			t.Fatal("accepted a body that is not the sealed file key")
		}
	})
}

// FuzzParseStudyKey: whatever parses has exactly the input as its text
// form (one encoding per key).
func FuzzParseStudyKey(f *testing.F) {
	f.Add(fixedStudyKey().String())
	f.Add(strings.ToLower(fixedStudyKey().String()))
	f.Add("PACSNET-STUDY-KEY-1")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseStudyKey(s)
		if err != nil {
			if k != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("k = %v, err = %v", k != nil, err)
			}
			return
		}
		if k.String() != s {
			t.Fatal("parsed a non-canonical form")
		}
	})
}
