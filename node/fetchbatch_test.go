package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// The fetch batch verifies instances beside the transfer and commits only
// what verified: instances whose ciphertext decrypts to what the manifest
// says are indexed, with their blocks, by the next commit; one that does
// not match its SHA-256 or does not decrypt fails the commit (integrity)
// and is never indexed; an instance spread over several blocks verifies
// once its last block is in.
func TestFetchBatchVerifies(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	st, err := store.Open(store.Options{Dir: t.TempDir(), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sk, err := crypto.NewStudyKey()
	if err != nil {
		t.Fatal(err)
	}
	const study = "1.2.826.0.1.3680043.2.1125.1"
	if _, _, err := st.EnsureStudy(store.Study{Study: wire.Study{UID: study}, Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	// instance encrypts plain to sk and cuts it into blocks of size cut.
	type fetched struct {
		info   InstanceInfo
		blocks map[cid.Cid][]byte
		order  []cid.Cid
	}
	instance := func(sop string, plain []byte, cut int, digest string) fetched {
		ct, err := crypto.Encrypt(plain, sk.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(plain)
		if digest == "" {
			digest = hex.EncodeToString(sum[:])
		}
		fi := fetched{info: InstanceInfo{Study: study, Series: study + ".1", SOPInstanceUID: sop, TransferSyntaxUID: "1.2.840.10008.1.2.1",
			Size: int64(len(plain)), Digest: digest}, blocks: map[cid.Cid][]byte{}}
		for off := 0; off < len(ct); off += cut {
			b := ct[off:min(off+cut, len(ct))]
			c, _ := cidPrefix.Sum(b)
			fi.blocks[c] = b
			fi.order = append(fi.order, c)
			fi.info.Blocks = append(fi.info.Blocks, wire.BlockRef{CID: c.String(), Size: len(b)})
		}
		return fi
	}
	plain := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	good := instance(study+".1.1", plain(300_000), 100_000, "")
	multi := instance(study+".1.2", plain(250_000), 64_000, "")
	wrong := instance(study+".1.3", plain(1000), 100_000, hex.EncodeToString(make([]byte, 32)))

	run := func(insts ...fetched) error {
		f := &fetcher{store: st, clock: clock.Real(), space: &space{}}
		need := map[cid.Cid]int{}
		for _, in := range insts {
			for _, c := range in.order {
				need[c]++
			}
		}
		bt := newFetchBatch(f, &fetchJob{}, sk, need)
		for _, in := range insts {
			for _, c := range in.order {
				if err := bt.add(c, in.blocks[c]); err != nil {
					return err
				}
			}
			if err := bt.finished(context.Background(), in.info); err != nil {
				return err
			}
		}
		return bt.flush()
	}
	if err := run(good, multi); err != nil {
		t.Fatalf("good instances: %v", err)
	}
	for _, in := range []fetched{good, multi} {
		if _, ok, err := st.Instance(study, in.info.SOPInstanceUID); !ok || err != nil {
			t.Fatalf("%s not indexed after its commit (%v)", in.info.SOPInstanceUID, err)
		}
	}
	if err := run(wrong); !errors.Is(err, errIntegrity) {
		t.Fatalf("an instance that does not match its SHA-256: %v, want errIntegrity", err)
	}
	if _, ok, _ := st.Instance(study, wrong.info.SOPInstanceUID); ok {
		t.Fatal("an instance that failed verification was indexed")
	}
	other, _ := crypto.NewStudyKey()
	foreign := instance(study+".1.4", plain(1000), 100_000, "")
	sk = other // the batch's key is not the one the instance was encrypted to
	if err := run(foreign); !errors.Is(err, errIntegrity) {
		t.Fatalf("an instance under another key: %v, want errIntegrity", err)
	}
}
