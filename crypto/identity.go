package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// File names inside an identity directory.
const (
	SignKeyFile = "node.key" // lcrypto.MarshalPrivateKey of the Ed25519 key
	BoxKeyFile  = "age.key"  // the age identity string ("AGE-SECRET-KEY-PQ-1…") and a newline
)

// Identity is a node's long-term keys.
type Identity struct {
	// Sign is an Ed25519 key; its public key is the node's libp2p peer ID,
	// so a peer ID is enough to verify the node's signatures.
	Sign lcrypto.PrivKey
	// Box is a post-quantum hybrid (ML-KEM-768 + X25519) age identity:
	// manifests and wrapped keys are encrypted to its recipient.
	Box *age.HybridIdentity
}

// GenerateIdentity creates a fresh Identity from crypto/rand.
func GenerateIdentity() (*Identity, error) {
	sk, _, err := lcrypto.GenerateEd25519Key(nil) // nil: crypto/rand
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	box, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("generate age identity: %w", err)
	}
	return &Identity{Sign: sk, Box: box}, nil
}

// PeerID is the libp2p peer ID of the signing key (Ed25519 keys are inlined
// in the ID). It returns "" only if Sign is nil or unusable.
func (id *Identity) PeerID() peer.ID {
	if id == nil || id.Sign == nil {
		return ""
	}
	p, err := peer.IDFromPrivateKey(id.Sign)
	if err != nil {
		return ""
	}
	return p
}

// Recipient is the age recipient others encrypt to for this node.
func (id *Identity) Recipient() *age.HybridRecipient {
	return id.Box.Recipient()
}

// SaveIdentity writes dir/node.key and dir/age.key with [WriteKeyFile],
// creating dir (mode 0700) if needed. It never overwrites: if either file
// exists it fails (wrapping fs.ErrExist) and leaves no new file behind.
func SaveIdentity(dir string, id *Identity) error {
	if id == nil || id.Sign == nil || id.Box == nil {
		return errors.New("save identity: incomplete identity")
	}
	if _, ok := id.Sign.(*lcrypto.Ed25519PrivateKey); !ok {
		return fmt.Errorf("save identity: signing key: %w", errKeyType)
	}
	sk, err := lcrypto.MarshalPrivateKey(id.Sign)
	if err != nil {
		return fmt.Errorf("save identity: marshal signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	signPath := filepath.Join(dir, SignKeyFile)
	boxPath := filepath.Join(dir, BoxKeyFile)
	// Check both first so an existing age.key does not leave a fresh,
	// orphaned node.key behind.
	for _, p := range []string{signPath, boxPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("save identity: %s: %w", p, os.ErrExist)
		}
	}
	if err := WriteKeyFile(signPath, sk); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := WriteKeyFile(boxPath, []byte(id.Box.String()+"\n")); err != nil {
		_ = os.Remove(signPath)
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

// LoadIdentity reads an Identity written by [SaveIdentity]. Both files go
// through [ReadKeyFile], so insecure permissions are refused.
func LoadIdentity(dir string) (*Identity, error) {
	skBytes, err := ReadKeyFile(filepath.Join(dir, SignKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	sk, err := lcrypto.UnmarshalPrivateKey(skBytes)
	if err != nil {
		// The libp2p error does not echo key bytes, but keep ours generic.
		return nil, fmt.Errorf("load identity: %s does not hold a libp2p private key", SignKeyFile)
	}
	if _, ok := sk.(*lcrypto.Ed25519PrivateKey); !ok {
		return nil, fmt.Errorf("load identity: %s: %w", SignKeyFile, errKeyType)
	}
	boxBytes, err := ReadKeyFile(filepath.Join(dir, BoxKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	box, err := age.ParseHybridIdentity(string(bytes.TrimSpace(boxBytes)))
	if err != nil {
		return nil, fmt.Errorf("load identity: %s does not hold a hybrid age identity", BoxKeyFile)
	}
	return &Identity{Sign: sk, Box: box}, nil
}
