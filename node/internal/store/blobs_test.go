package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
)

// putBlocks stores blocks without indexing them, synced: staged, synced
// and their places committed, as a commit does.
func putBlocks(s *Store, blocks []Block) error {
	staged, err := s.Stage(blocks)
	if err != nil {
		return err
	}
	if err := s.syncStaged(staged); err != nil {
		return err
	}
	return s.update(func(txn *badger.Txn) error { return s.setStaged(txn, staged) })
}

// Blocks go to the blob log and come back byte for byte, across segments
// and restarts: a reopened store writes to a new segment, so a tail torn
// by a crash is never written after nor read; blocks an older archive
// keeps in Badger read as before.
func TestBlobLog(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	s, err := Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	s.blobs.maxSeg = 64 // a few blocks a segment
	var blocks []Block
	for i := range 10 {
		blocks = append(blocks, block(t, strings.Repeat(string(rune('a'+i)), 20+i)))
	}
	if err := putBlocks(s, blocks[:6]); err != nil {
		t.Fatal(err)
	}
	if err := putBlocks(s, blocks[6:8]); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, bs []Block) {
		t.Helper()
		for _, b := range bs {
			got, err := s.GetBlock(context.Background(), b.CID)
			if err != nil || !bytes.Equal(got, b.Data) {
				t.Fatalf("block %s: %q, %v", b.CID, got, err)
			}
			if ok, err := s.HasBlock(b.CID); !ok || err != nil {
				t.Fatalf("has block %s: %v %v", b.CID, ok, err)
			}
		}
		var cids []cid.Cid
		var want []byte
		for _, b := range bs {
			cids = append(cids, b.CID)
			want = append(want, b.Data...)
		}
		if got, err := s.AppendBlocks([]byte("x"), cids); err != nil || !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Fatalf("append blocks: %v", err)
		}
	}
	check(s, blocks[:8])
	segs, _ := os.ReadDir(filepath.Join(dir, blobsDir))
	if len(segs) < 3 {
		t.Fatalf("%d segments for 8 blocks of 20-27 bytes in segments of 64", len(segs))
	}
	// No block is in Badger itself; the scan shows them as blocks anyway.
	seen := 0
	s.ScanRaw(func(k, v []byte) {
		if bytes.HasPrefix(k, []byte(pfxBlock)) {
			seen++
		}
	})
	if seen != 8 {
		t.Errorf("ScanRaw shows %d blocks, want 8", seen)
	}
	// A block an older archive holds in Badger reads as before.
	legacy := blocks[9]
	if err := s.SetRaw(blockKey(legacy.CID), legacy.Data); err != nil {
		t.Fatal(err)
	}
	check(s, []Block{legacy})
	s.Close()

	// A crash left junk at a segment's end: the reopened store never
	// writes after it, and what was committed reads the same.
	last := filepath.Join(dir, blobsDir, segs[len(segs)-1].Name())
	f, _ := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("torn tail of an append that was never committed"))
	f.Close()
	s, err = Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := putBlocks(s, blocks[8:9]); err != nil {
		t.Fatal(err)
	}
	check(s, blocks[1:9])
	segs2, _ := os.ReadDir(filepath.Join(dir, blobsDir))
	if len(segs2) != len(segs)+1 {
		t.Errorf("after a restart: %d segments, want a new one after %d", len(segs2), len(segs))
	}
	if s.Size() <= 0 {
		t.Error("size without the blob log")
	}
	// A reference into a missing segment is an error, not a crash.
	os.Remove(filepath.Join(dir, blobsDir, segs2[len(segs2)-1].Name()))
	s.blobs.close()
	if _, err := s.GetBlock(context.Background(), blocks[8].CID); err == nil {
		t.Error("a block whose segment is gone was read")
	}
}

// Concurrent appends share fsyncs and roll segments under each other:
// every append returns only once its bytes are synced, none fails, and
// every block reads back.
func TestBlobLogConcurrentAppends(t *testing.T) {
	b, err := openBlobs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	b.maxSeg = 300 // rolls often
	const workers, each = 8, 40
	type got struct {
		ref  extent
		data []byte
	}
	res := make(chan got, workers*each*2)
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				data := bytes.Repeat([]byte{byte(w), byte(i)}, 20+i%7)
				refs, err := b.append([]Block{{Data: data}, {Data: data[:10]}})
				if err != nil {
					errs <- err
					return
				}
				res <- got{refs[0], data}
				res <- got{refs[1], data[:10]}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(res)
	n := 0
	for g := range res {
		back, err := b.read([]extent{g.ref}, nil)
		if err != nil || !bytes.Equal(back, g.data) {
			t.Fatalf("block at %+v: %v", g.ref, err)
		}
		n++
	}
	if n != workers*each*2 {
		t.Fatalf("%d blocks", n)
	}
}

// Blocks staged piece by piece by writers at once come back byte for
// byte: each block's place lists the pieces others' bytes came between,
// across segment rolls, and a lone writer's pieces merge into one extent.
// Nothing staged is readable before its commit.
func TestBlockWriterPieces(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.blobs.maxSeg = 1000 // rolls every few pieces
	const writers = 4
	data := make([][]byte, writers)
	ws := make([]*BlockWriter, writers)
	for i := range writers {
		ws[i] = s.BlockWriter()
	}
	for piece := range 12 {
		for i := range writers {
			p := bytes.Repeat([]byte{byte(i), byte(piece)}, 50+piece)
			data[i] = append(data[i], p...)
			if err := ws[i].Write(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	var staged []Staged
	for i := range writers {
		b := block(t, string(data[i]))
		st := ws[i].Cut(b.CID)
		if len(st.ext) < 2 {
			t.Fatalf("writer %d: %d extents for interleaved pieces", i, len(st.ext))
		}
		staged = append(staged, st)
		if has, _ := s.HasBlock(b.CID); has {
			t.Fatal("a staged block is visible before its commit")
		}
	}
	lone := s.BlockWriter()
	var loneData []byte
	s.blobs.maxSeg = 1 << 20
	for piece := range 5 {
		p := bytes.Repeat([]byte{9, byte(piece)}, 40)
		loneData = append(loneData, p...)
		if err := lone.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	lb := block(t, string(loneData))
	ls := lone.Cut(lb.CID)
	if len(ls.ext) != 1 {
		t.Fatalf("a lone writer's pieces: %d extents, want 1", len(ls.ext))
	}
	staged = append(staged, ls)
	data = append(data, loneData)
	if err := s.syncStaged(staged); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(txn *badger.Txn) error { return s.setStaged(txn, staged) }); err != nil {
		t.Fatal(err)
	}
	for i, st := range staged {
		got, err := s.GetBlock(context.Background(), st.CID)
		if err != nil || !bytes.Equal(got, data[i]) {
			t.Fatalf("block %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := decodeRef(make([]byte, 17)); err == nil {
		t.Error("a ref of 17 bytes decoded")
	}
	if _, err := decodeRef(make([]byte, 16*(maxExtents+1))); err == nil {
		t.Error("a ref of too many extents decoded")
	}
}

// Blocks staged for an instance that is not committed, and the block a
// writer was in the middle of, are punched out of the blob log: their
// space is freed, while committed blocks written before, between and
// after them (in the same and in an older segment) read back intact.
func TestDiscardPunchesStagedBlocks(t *testing.T) {
	dir := t.TempDir()
	requirePunch(t, dir)
	s, err := Open(Options{Dir: dir, Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const mib = 1 << 20
	s.blobs.maxSeg = 5 * mib // the first segment is an older one by the end
	fill := func(b byte) []byte { return bytes.Repeat([]byte{b, b + 1, b + 2}, mib/3+1)[:mib] }
	kept := []Block{block(t, string(fill(1)))}
	if err := putBlocks(s, kept); err != nil {
		t.Fatal(err)
	}
	// Interleaved with a block that is kept: a writer staging two whole
	// blocks and half of a third, piece by piece.
	w := s.BlockWriter()
	other := s.BlockWriter()
	var staged []Staged
	otherData := fill(40)
	for blk := range 3 {
		data := fill(byte(10 * (blk + 2)))
		if blk == 2 {
			data = data[:mib/2]
		}
		for off := 0; off < len(data); off += 64 << 10 {
			if err := w.Write(data[off:min(off+64<<10, len(data))]); err != nil {
				t.Fatal(err)
			}
			if blk == 1 && off < len(otherData) {
				if err := other.Write(otherData[off : off+64<<10]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if blk < 2 {
			staged = append(staged, w.Cut(block(t, string(data)).CID))
		}
	}
	ob := block(t, string(otherData))
	ost := other.Cut(ob.CID)
	if err := s.syncStaged([]Staged{ost}); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(txn *badger.Txn) error { return s.setStaged(txn, []Staged{ost}) }); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, ob)
	if err := s.syncStaged(staged); err != nil { // as a commit would, before it failed
		t.Fatal(err)
	}
	// A later block in a new segment.
	later := block(t, string(fill(90)))
	if err := putBlocks(s, []Block{later}); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, later)
	if s.blobs.curID == staged[0].ext[0].seg {
		t.Fatal("the test wants the discarded blocks in an older segment too")
	}

	before := s.blobs.size() // allocated, not apparent, bytes
	freed := s.Discard(staged, w)
	after := s.blobs.size()
	if freed != 2*mib+mib/2 {
		t.Errorf("freed %d bytes, want %d", freed, 2*mib+mib/2)
	}
	// File systems free whole blocks of 4 KiB: a few KiB at each piece's
	// edges may stay.
	if before-after < 2*mib {
		t.Errorf("allocated %d → %d bytes: less than 2 MiB freed", before, after)
	}
	for _, b := range kept {
		got, err := s.GetBlock(context.Background(), b.CID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("kept block %s: %d bytes, %v", b.CID, len(got), err)
		}
	}
	// The writer goes on with a block of its own afterwards.
	if err := w.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
}

// What a crash left in the blob log (blocks staged, never committed, and
// a torn tail) is punched out by the sweep of the next run, segment by
// segment, once; committed blocks read back intact, and the segments of
// the running process are left alone.
func TestSweepBlobs(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	requirePunch(t, dir)
	s, err := Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	s.blobs.maxSeg = 3 * mib
	fill := func(b byte) []byte { return bytes.Repeat([]byte{b, b + 1, b + 2, b + 3}, mib/4) }
	var kept []Block
	for i := range 6 { // committed and not, alternately, over several segments
		b := block(t, string(fill(byte(10*i))))
		if i%2 == 0 {
			if err := putBlocks(s, []Block{b}); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, b)
		} else if _, err := s.Stage([]Block{b}); err != nil { // a commit that never came
			t.Fatal(err)
		}
	}
	// A torn tail: half a block written when the process died.
	w := s.BlockWriter()
	if err := w.Write(fill(99)[:mib/2]); err != nil {
		t.Fatal(err)
	}
	if err := s.blobs.sync([]extent{{seg: s.blobs.curID, off: 0, n: 1}}); err != nil {
		t.Fatal(err)
	}
	s.Close() // as a crash would leave it: nothing more is committed

	s, err = Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// This run writes a block before the sweep: its segment is not swept.
	now := block(t, string(fill(200)))
	staged, err := s.Stage([]Block{now})
	if err != nil {
		t.Fatal(err)
	}
	before := s.blobs.size()
	freed, err := s.SweepBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := s.blobs.size()
	if freed < 3*mib+mib/2 || freed > 3*mib+mib/2+64<<10 {
		t.Errorf("freed %d bytes, want 3.5 MiB", freed)
	}
	if before-after < 3*mib {
		t.Errorf("allocated %d → %d bytes", before, after)
	}
	for _, b := range kept {
		got, err := s.GetBlock(context.Background(), b.CID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("kept block: %d bytes, %v", len(got), err)
		}
	}
	// This run's staged block is whole: it commits and reads back.
	if err := s.syncStaged(staged); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(txn *badger.Txn) error { return s.setStaged(txn, staged) }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetBlock(context.Background(), now.CID); err != nil || !bytes.Equal(got, now.Data) {
		t.Fatalf("this run's block: %d bytes, %v", len(got), err)
	}
	// Once is enough: a second sweep finds nothing to do.
	if freed, err := s.SweepBlobs(context.Background()); err != nil || freed != 0 {
		t.Errorf("second sweep: %d bytes, %v", freed, err)
	}
}

// requirePunch skips a test where dir's file system cannot punch holes
// (the blob log then keeps such bytes, as documented).
func requirePunch(t *testing.T, dir string) {
	t.Helper()
	if !PunchSupported(dir) {
		t.Skip("this file system cannot punch holes")
	}
}
