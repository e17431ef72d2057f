package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/internal/wire"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func block(t *testing.T, data string) Block {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}.Sum([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return Block{CID: c, Data: []byte(data)}
}

// stage stages blocks for a commit.
func stage(t *testing.T, s *Store, blocks ...Block) []Staged {
	t.Helper()
	staged, err := s.Stage(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return staged
}

// Both modes keep the same records with the same rules: an instance is
// indexed with its blocks, a second copy is a duplicate, another instance
// under the same SOP Instance UID a conflict, and nothing of either is
// written.
func TestInstancesOnDiskAndInMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) Options
	}{
		{"disk", func(t *testing.T) Options { return Options{Dir: t.TempDir(), Key: testKey(t)} }},
		{"memory", func(t *testing.T) Options { return Options{InMemory: true, Key: testKey(t)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Now()
			if _, found, err := s.EnsureStudy(Study{Study: wire.Study{UID: "1.2.3"}, Key: []byte("k"), Created: now}); err != nil || found {
				t.Fatalf("ensure study: %v %v", found, err)
			}
			if st, found, err := s.EnsureStudy(Study{Study: wire.Study{UID: "1.2.3"}, Key: []byte("other")}); err != nil || !found || string(st.Key) != "k" {
				t.Fatalf("ensure study again: %+v %v %v", st, found, err)
			}
			b := block(t, "ciphertext")
			rec := wire.Instance{Study: "1.2.3", Series: "1.2.3.1", SOPInstanceUID: "1.2.3.1.1", TransferSyntaxUID: "1.2.840.10008.1.2.1",
				Modality: "CT", Size: 10, Digest: "aa", Blocks: []wire.BlockRef{{CID: b.CID.String(), Size: len(b.Data)}}}
			if o, why, err := s.AddInstance(rec, stage(t, s, b), now); err != nil || o != Stored || why != nil {
				t.Fatalf("add: %v %v %v", o, why, err)
			}
			if got, err := s.GetBlock(context.Background(), b.CID); err != nil || !bytes.Equal(got, b.Data) {
				t.Fatalf("get block: %q %v", got, err)
			}
			if study, err := s.BlockStudy(b.CID); err != nil || study != "1.2.3" {
				t.Fatalf("block study: %q %v", study, err)
			}
			if o, why, err := s.AddInstance(rec, nil, now); err != nil || o != Duplicate || why != nil {
				t.Fatalf("add again: %v %v %v", o, why, err)
			}
			other := rec
			other.Digest = "bb"
			other.Blocks = []wire.BlockRef{{CID: block(t, "other").CID.String(), Size: 5}}
			if o, why, err := s.AddInstance(other, stage(t, s, block(t, "other")), now); err != nil || o != Conflict || !errors.Is(why, ErrConflictDifferent) {
				t.Fatalf("conflict: %v %v %v", o, why, err)
			}
			if has, _ := s.HasBlock(block(t, "other").CID); has {
				t.Error("a conflicting instance's block was written")
			}
			if err := s.CommitFetched(nil, []wire.Instance{other}, now); !errors.Is(err, ErrIntegrity) {
				t.Errorf("commit a conflicting fetched instance: %v, want ErrIntegrity", err)
			}
			sr, ok, err := s.Study("1.2.3")
			if err != nil || !ok || sr.Instances != 1 || sr.Bytes != 10 || len(sr.Modalities) != 1 {
				t.Fatalf("study: %+v %v %v", sr, ok, err)
			}
			if _, err := s.BlockStudy(block(t, "absent").CID); !errors.Is(err, ErrNotFound) {
				t.Errorf("absent block: %v", err)
			}
		})
	}
}

// QueueManifest numbers manifests per study and queues them in order; a
// failing build queues nothing and uses no number.
func TestQueueManifest(t *testing.T) {
	s, err := Open(Options{InMemory: true, Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		err := s.QueueManifest("1.2.3", func(v uint64) (OutboxItem, error) {
			if v != uint64(i+1) {
				t.Errorf("version %d, want %d", v, i+1)
			}
			return OutboxItem{Peer: testPeer(t), Kind: "study", Study: "1.2.3", Version: v}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.QueueManifest("1.2.3", func(uint64) (OutboxItem, error) { return OutboxItem{}, errors.New("seal failed") }); err == nil {
		t.Fatal("a failing build was queued")
	}
	if v, _ := s.NextManifestVersion("1.2.3"); v != 4 {
		t.Errorf("next version %d, want 4", v)
	}
	items, err := s.Outbox()
	if err != nil || len(items) != 3 || items[0].Seq != 1 || items[2].Version != 3 {
		t.Fatalf("outbox: %+v %v", items, err)
	}
	if err := s.DeleteOutbox(items[0].Seq); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.Outbox(); len(items) != 2 {
		t.Errorf("after delete: %d items", len(items))
	}
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := lcrypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
