package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pacsnet/pacsnet/internal/durable"
)

// blobsDir is where block ciphertext lives, beside Badger in the archive
// directory (Badger ignores it; a backup of the archive folder has it).
const blobsDir = "blobs"

// maxSegment is the size past which the blob log starts a new segment.
const maxSegment = 256 << 20

// blobs is an append-only log of block ciphertext in segment files, so
// that a block is written once and synced once. Badger keeps only each
// block's place under bref/: one or more extents of 16 bytes each. A
// block written whole (fetched) is one extent; a block written piece by
// piece as an instance is received (BlockWriter) is one extent per piece
// that another writer's bytes came between, merged where contiguous. Blocks are age ciphertext,
// authenticated and encrypted already: the log adds no encryption of its
// own (Badger's at-rest encryption of them was redundant and cost ~2 ms
// an instance, docs/performance.md).
//
// A segment is only ever appended to by the process that created it:
// after a restart, writes go to a new one, so a tail torn by a crash is
// never read (no ref points into it) and never written after. Blocks
// staged for an instance that is then not stored are punched out at once
// (punch); what a crash mid-instance left behind, by the next run's
// SweepBlobs.
type blobs struct {
	dir    string
	maxSeg int64 // maxSegment; tests make it small

	mu        sync.Mutex // appends
	cur       *os.File
	curID     uint32
	curOff    int64
	syncedOff int64 // of cur: bytes known to be on disk
	nextID    uint32
	firstNew  uint32          // nextID at open: segments below it are of earlier runs (SweepBlobs)
	failed    map[uint32]bool // segments a write or sync failed on: their tails are unknown

	// smu lets one fsync run at a time, outside mu: appends of other
	// goroutines go on meanwhile, and the next fsync covers all of them
	// (group commit across associations and imports).
	smu sync.Mutex

	rmu     sync.RWMutex // read handles
	readers map[uint32]*os.File
}

// extent is a run of bytes in one segment.
type extent struct {
	seg uint32
	off int64
	n   uint32
}

// maxExtents bounds a block's place: a block is at most a MiB, written in
// pieces of 64 KiB or more.
const maxExtents = 64

// encodeRef is a block's place as Badger keeps it.
func encodeRef(ext []extent) []byte {
	b := make([]byte, 16*len(ext))
	for i, e := range ext {
		binary.BigEndian.PutUint32(b[16*i:], e.seg)
		binary.BigEndian.PutUint64(b[16*i+4:], uint64(e.off))
		binary.BigEndian.PutUint32(b[16*i+12:], e.n)
	}
	return b
}

func decodeRef(b []byte) ([]extent, error) {
	if len(b) == 0 || len(b)%16 != 0 || len(b) > 16*maxExtents {
		return nil, fmt.Errorf("block ref of %d bytes", len(b))
	}
	ext := make([]extent, len(b)/16)
	for i := range ext {
		ext[i] = extent{seg: binary.BigEndian.Uint32(b[16*i:]), off: int64(binary.BigEndian.Uint64(b[16*i+4:])), n: binary.BigEndian.Uint32(b[16*i+12:])}
	}
	return ext, nil
}

// addExtent appends e to ext, merged with the last one when contiguous.
func addExtent(ext []extent, e extent) []extent {
	if k := len(ext) - 1; k >= 0 && ext[k].seg == e.seg && ext[k].off+int64(ext[k].n) == e.off {
		ext[k].n += e.n
		return ext
	}
	return append(ext, e)
}

func segName(id uint32) string { return fmt.Sprintf("%08d.blob", id) }

// openBlobs finds the segments under dir (created at the first append).
func openBlobs(dir string) (*blobs, error) {
	b := &blobs{dir: dir, maxSeg: maxSegment, readers: map[uint32]*os.File{}, nextID: 1, failed: map[uint32]bool{}}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open blob log: %w", err)
	}
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".blob"); ok {
			if id, err := strconv.ParseUint(n, 10, 32); err == nil && uint32(id) >= b.nextID {
				b.nextID = uint32(id) + 1
			}
		}
	}
	b.firstNew = b.nextID
	return b, nil
}

// append writes the blocks' bytes and syncs them, and returns where each
// is.
func (b *blobs) append(blocks []Block) ([]extent, error) {
	var ext []extent
	for _, bl := range blocks {
		e, err := b.write(bl.Data)
		if err != nil {
			return nil, err
		}
		ext = append(ext, e)
	}
	return ext, b.sync(ext)
}

// write appends p without syncing it and returns where it is; sync makes
// it durable. (Starting each piece's writeback at once with
// sync_file_range was tried: it cost 0.5 ms of CPU an instance, many
// small writes instead of one, for no gain in the fsync on 2 cores.)
func (b *blobs) write(p []byte) (extent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == nil || b.curOff+int64(len(p)) > b.maxSeg && b.curOff > 0 {
		if err := b.roll(); err != nil {
			return extent{}, err
		}
	}
	if _, err := b.cur.Write(p); err != nil {
		b.abandon()
		return extent{}, fmt.Errorf("write blob log: %w", err)
	}
	e := extent{seg: b.curID, off: b.curOff, n: uint32(len(p))}
	b.curOff += int64(len(p))
	return e, nil
}

// sync returns once every extent's bytes are on disk. The fsync runs
// outside the append lock and covers whatever other writes came
// meanwhile: concurrent ingests, associations and fetches share fsyncs.
func (b *blobs) sync(ext []extent) error {
	// Every segment the bytes went to must be on disk: the earlier ones
	// were synced when the log rolled past them (or failed, which syncTo
	// reports).
	end := map[uint32]int64{}
	for _, e := range ext {
		if e.n > 0 {
			end[e.seg] = max(end[e.seg], e.off+int64(e.n))
		}
	}
	for seg, e := range end {
		if err := b.syncTo(seg, e); err != nil {
			return err
		}
	}
	return nil
}

// syncTo returns once segment seg is on disk up to end.
func (b *blobs) syncTo(seg uint32, end int64) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	b.mu.Lock()
	switch {
	case b.failed[seg]:
		b.mu.Unlock()
		return fmt.Errorf("sync blob log: segment %s failed", segName(seg))
	case seg != b.curID || b.cur == nil:
		b.mu.Unlock()
		return nil // rolled past: roll synced it
	case b.syncedOff >= end:
		b.mu.Unlock()
		return nil // another append's fsync covered it
	}
	f, target := b.cur, b.curOff
	b.mu.Unlock()
	if err := f.Sync(); err != nil {
		b.mu.Lock()
		if b.curID != seg && !b.failed[seg] {
			b.mu.Unlock()
			return nil // an append rolled past it meanwhile and synced it first
		}
		b.failed[seg] = true
		if b.cur == f {
			b.abandon()
		}
		b.mu.Unlock()
		return fmt.Errorf("sync blob log: %w", err)
	}
	b.mu.Lock()
	if b.curID == seg && target > b.syncedOff {
		b.syncedOff = target
	}
	b.mu.Unlock()
	return nil
}

// roll starts a new segment (and the folder, the first time), synced into
// its directory, after syncing the one it leaves.
func (b *blobs) roll() error {
	if b.cur != nil {
		if err := b.cur.Sync(); err != nil {
			b.abandon()
			return fmt.Errorf("sync blob log: %w", err)
		}
		b.cur.Close()
		b.cur = nil
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return fmt.Errorf("blob log: %w", err)
	}
	id := b.nextID
	f, err := os.OpenFile(filepath.Join(b.dir, segName(id)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("blob log: new segment: %w", err)
	}
	durable.SyncDir(b.dir) // best effort, as before
	b.cur, b.curID, b.curOff, b.syncedOff, b.nextID = f, id, 0, 0, id+1
	return nil
}

// abandon stops appending to a segment a write or sync failed on: its
// tail is unknown, so the next append starts a new one, and appends
// waiting for its fsync fail.
func (b *blobs) abandon() {
	if b.cur != nil {
		if len(b.failed) < 1<<16 {
			b.failed[b.curID] = true
		}
		b.cur.Close()
		b.cur = nil
	}
}

// read appends the block at ext to dst.
func (b *blobs) read(ext []extent, dst []byte) ([]byte, error) {
	start := len(dst)
	for _, e := range ext {
		if e.n == 0 {
			continue
		}
		f, err := b.reader(e.seg)
		if err != nil {
			return dst[:start], err
		}
		at := len(dst)
		if cap(dst)-at >= int(e.n) {
			dst = dst[:at+int(e.n)] // read into, no need to zero it first
		} else {
			dst = append(dst, make([]byte, e.n)...)
		}
		if _, err := f.ReadAt(dst[at:], e.off); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("segment %s ends before the block: %w", segName(e.seg), io.ErrUnexpectedEOF)
			}
			return dst[:start], fmt.Errorf("read blob log: %w", err)
		}
	}
	return dst, nil
}

func (b *blobs) reader(seg uint32) (*os.File, error) {
	b.rmu.RLock()
	f := b.readers[seg]
	b.rmu.RUnlock()
	if f != nil {
		return f, nil
	}
	b.rmu.Lock()
	defer b.rmu.Unlock()
	if f := b.readers[seg]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(b.dir, segName(seg)))
	if err != nil {
		return nil, fmt.Errorf("read blob log: %w", err)
	}
	b.readers[seg] = f
	return f, nil
}

// size is the bytes the segments take on disk: what is allocated to
// them, so that ranges punched out (punch) do not count.
func (b *blobs) size() int64 {
	ents, _ := os.ReadDir(b.dir)
	var n int64
	for _, e := range ents {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".blob") {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += min(info.Size(), st.Blocks*512)
			} else {
				n += info.Size()
			}
		}
	}
	return n
}

// punch frees the disk space of extents that no record references and
// none ever will (blocks of an instance that was not stored): the
// segment keeps its length and every other byte where it is, the range
// reads back as zeros and takes no space (fallocate's punch-hole, which
// ext4, XFS and btrfs have). Where the file system cannot, the bytes stay
// as before. It returns the bytes punched.
func (b *blobs) punch(ext []extent) int64 {
	bySeg := map[uint32][]extent{}
	for _, e := range ext {
		if e.n > 0 {
			bySeg[e.seg] = append(bySeg[e.seg], e)
		}
	}
	var freed int64
	for seg, es := range bySeg {
		// The segment being appended to is punched through its own
		// handle, under the append lock so that a roll cannot close it
		// meanwhile; the others through a handle of their own.
		b.mu.Lock()
		if seg == b.curID && b.cur != nil {
			freed += punchFile(b.cur, es)
			b.mu.Unlock()
			continue
		}
		b.mu.Unlock()
		f, err := os.OpenFile(filepath.Join(b.dir, segName(seg)), os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		freed += punchFile(f, es)
		f.Close()
	}
	return freed
}

// PunchSupported reports whether dir's file system can punch holes, as
// Discard and SweepBlobs need to free space (ext4, XFS, btrfs and tmpfs
// can).
func PunchSupported(dir string) bool {
	f, err := os.CreateTemp(dir, ".punch-*")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, 8<<10)); err != nil {
		return false
	}
	return punchFile(f, []extent{{off: 0, n: 8 << 10}}) > 0
}

func punchFile(f *os.File, es []extent) int64 {
	var freed int64
	for _, e := range es {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, e.off, int64(e.n)); err != nil {
			return freed // not supported here, or the segment is gone: leave the bytes
		}
		freed += int64(e.n)
	}
	return freed
}

func (b *blobs) close() {
	b.smu.Lock()
	b.mu.Lock()
	if b.cur != nil {
		b.cur.Close() // every append returned after its fsync
		b.cur = nil
	}
	b.mu.Unlock()
	b.smu.Unlock()
	b.rmu.Lock()
	for _, f := range b.readers {
		f.Close()
	}
	clear(b.readers)
	b.rmu.Unlock()
}

// scan calls fn with each segment's bytes (tests: no plaintext anywhere).
func (b *blobs) scan(fn func(name string, data []byte)) error {
	ents, err := os.ReadDir(b.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".blob") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.dir, e.Name()))
		if err != nil {
			return err
		}
		fn(e.Name(), data)
	}
	return nil
}
