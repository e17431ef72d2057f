package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// errStudyNotFound: no study with that UID is held here.
var errStudyNotFound = errors.New("study not found")

// keyring holds the studies' keys: each is stored in the study record,
// age-encrypted to this node, and kept in plaintext only in a bounded
// cache.
type keyring struct {
	store *store.Store
	id    *crypto.Identity
	clock clock.Clock

	mu     sync.Mutex
	cache  map[string]*crypto.StudyKey
	origin map[string]peer.ID // of the cached keys' studies: "" for this facility's own
}

// otherOriginError refuses to mix a facility's own instances with a
// partner's copy of a study with the same Study Instance UID (or two
// partners' copies): each stays whole and attributable.
type otherOriginError struct {
	partner string // the copy's holder, or "" when the study is this facility's own
}

func (e *otherOriginError) Error() string {
	if e.partner == "" {
		return "a study with this Study Instance UID is held here as this facility's own; a partner's copy of it cannot be mixed in"
	}
	return fmt.Sprintf("this study is held here as a copy fetched from %s; instances cannot be added to a partner's copy (ask %s to add them, or store them under a new Study Instance UID)", e.partner, e.partner)
}

// maxCachedKeys bounds the plaintext study-key cache; past it the cache is
// emptied and keys are unwrapped again on use (one age decryption each).
const maxCachedKeys = 1024

func newKeyring(s *store.Store, id *crypto.Identity, c clock.Clock) *keyring {
	return &keyring{store: s, id: id, clock: c, cache: map[string]*crypto.StudyKey{}, origin: map[string]peer.ID{}}
}

func (k *keyring) otherOrigin(study string) error {
	sr, _, _ := k.store.Study(study)
	return &otherOriginError{partner: sr.OriginName}
}

// Key returns a held study's key.
func (k *keyring) Key(study string) (*crypto.StudyKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if sk, ok := k.cache[study]; ok {
		return sk, nil
	}
	sr, ok, err := k.store.Study(study)
	if err != nil {
		return nil, fmt.Errorf("read study: %w", err)
	}
	if !ok {
		return nil, errStudyNotFound
	}
	return k.unwrapLocked(sr)
}

func (k *keyring) unwrapLocked(sr store.Study) (*crypto.StudyKey, error) {
	plain, err := crypto.Decrypt(sr.Key, k.id.Box)
	if err != nil {
		return nil, fmt.Errorf("unwrap study key: %w", err)
	}
	sk, err := crypto.ParseStudyKey(string(plain))
	if err != nil {
		return nil, fmt.Errorf("unwrap study key: %w", err)
	}
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache)
		clear(k.origin)
	}
	k.cache[sr.UID] = sk
	k.origin[sr.UID] = sr.Origin
	return sk, nil
}

// Ensure returns the study's key, creating the study record on first use:
// with a new key for a study imported here (origin empty), or with the
// key a partner's manifest carries (given) for a fetched one.
func (k *keyring) Ensure(info wire.Study, origin peer.ID, originName, given string) (*crypto.StudyKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if sk, ok := k.cache[info.UID]; ok {
		if o := k.origin[info.UID]; o != origin {
			return nil, k.otherOrigin(info.UID)
		}
		return sk, nil
	}
	if sr, ok, err := k.store.Study(info.UID); err != nil {
		return nil, fmt.Errorf("read study: %w", err)
	} else if ok {
		if sr.Origin != origin {
			return nil, &otherOriginError{partner: sr.OriginName}
		}
		return k.unwrapLocked(sr)
	}
	var sk *crypto.StudyKey
	var err error
	if given != "" {
		sk, err = crypto.ParseStudyKey(given)
	} else {
		sk, err = crypto.NewStudyKey()
	}
	if err != nil {
		return nil, fmt.Errorf("study key: %w", err)
	}
	wrapped, err := crypto.Encrypt([]byte(sk.String()), k.id.Recipient())
	if err != nil {
		return nil, fmt.Errorf("wrap study key: %w", err)
	}
	now := k.clock.Now().UTC()
	sr := store.Study{Study: info, Origin: origin, OriginName: originName, Key: wrapped, Created: now, Updated: now}
	sr.Modalities = []string{} // filled from the instances as they are committed
	stored, found, err := k.store.EnsureStudy(sr)
	if err != nil {
		return nil, fmt.Errorf("store study: %w", err)
	}
	if found { // another process path created it first: use its key
		if stored.Origin != origin {
			return nil, &otherOriginError{partner: stored.OriginName}
		}
		return k.unwrapLocked(stored)
	}
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache)
		clear(k.origin)
	}
	k.cache[info.UID] = sk
	k.origin[info.UID] = origin
	return sk, nil
}
