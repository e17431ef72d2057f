package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// The fetch batch indexes an instance, with its blocks, by the commit
// after its last block is in (blocks reach it checked against their CIDs);
// an instance spread over several blocks is indexed once its last block
// is in. Its plaintext is checked on read: one whose ciphertext does not
// decrypt to the manifest's SHA-256, or does not decrypt with the study's
// key, is refused by every read, never served.
func TestFetchBatchCommitsAndReadsVerify(t *testing.T) {
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
		bt := newFetchBatch(f, &fetchJob{})
		for _, in := range insts {
			for _, c := range in.order {
				if err := bt.add(c, in.blocks[c]); err != nil {
					return err
				}
			}
			bt.finished(in.info)
		}
		return bt.commit()
	}
	other, _ := crypto.NewStudyKey()
	skOther := sk
	sk = other
	foreign := instance(study+".1.4", plain(1000), 100_000, "") // encrypted to another key than the study's
	sk = skOther
	if err := run(good, multi, wrong, foreign); err != nil {
		t.Fatalf("commit: %v", err)
	}
	ar := &archive{store: st, keys: &keyring{store: st, cache: map[string]*crypto.StudyKey{study: sk}, origin: map[string]peer.ID{}}}
	for _, in := range []fetched{good, multi} {
		rec, ok, err := st.Instance(study, in.info.SOPInstanceUID)
		if !ok || err != nil {
			t.Fatalf("%s not indexed after its commit (%v)", in.info.SOPInstanceUID, err)
		}
		if _, err := ar.read(rec); err != nil {
			t.Fatalf("read %s: %v", in.info.SOPInstanceUID, err)
		}
	}
	for _, in := range []fetched{wrong, foreign} {
		rec, ok, err := st.Instance(study, in.info.SOPInstanceUID)
		if !ok || err != nil {
			t.Fatalf("%s not indexed after its commit (%v)", in.info.SOPInstanceUID, err)
		}
		if b, err := ar.read(rec); err == nil {
			t.Fatalf("%s: read served %d bytes that do not match the manifest", in.info.SOPInstanceUID, len(b))
		}
	}
}
