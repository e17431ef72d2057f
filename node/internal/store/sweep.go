package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/dgraph-io/badger/v4"
)

// keySwept holds the highest blob segment ID whose unreferenced ranges
// SweepBlobs has punched out: every segment up to it is swept.
const keySwept = "meta/blob-swept"

// sweepBatch is how many segments one pass over the block index sweeps:
// their extents are all that pass holds in memory (at most a few
// thousand a segment).
const sweepBatch = 16

// SweepBlobs frees the space of bytes in the blob log that no block
// references: what a crash of an earlier run left between its first
// written blocks and a commit that never came (Discard frees what a
// running node drops itself). It sweeps only segments of earlier runs,
// which nothing appends to any more and into which no new reference can
// point (a commit references only blocks staged in this run), each once:
// the ranges between and after the extents the index references are
// punched out. It scans the whole block index once per 16 segments, and
// returns the bytes punched.
func (s *Store) SweepBlobs(ctx context.Context) (int64, error) {
	if s.blobs == nil || s.readOnly {
		return 0, nil
	}
	var swept uint32
	if err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keySwept))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil // never swept
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			n, err := strconv.ParseUint(string(v), 10, 32)
			swept = uint32(n)
			return err
		})
	}); err != nil {
		return 0, fmt.Errorf("sweep blob log: %w", err)
	}
	last := s.blobs.firstNew - 1 // the last segment of an earlier run
	var freed int64
	for lo := swept + 1; lo <= last && lo > 0; lo += sweepBatch {
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		hi := min(lo+sweepBatch-1, last)
		refs := map[uint32][]extent{}
		err := s.Scan([]byte(pfxBlockRef), func(_, v []byte) error {
			ext, err := decodeRef(v)
			if err != nil {
				return err
			}
			for _, e := range ext {
				if e.n > 0 && e.seg >= lo && e.seg <= hi {
					refs[e.seg] = append(refs[e.seg], e)
				}
			}
			return nil
		})
		if err != nil {
			return freed, fmt.Errorf("sweep blob log: %w", err)
		}
		for seg := lo; seg <= hi; seg++ {
			fi, err := os.Stat(filepath.Join(s.blobs.dir, segName(seg)))
			if err != nil {
				continue // never created, or gone
			}
			freed += s.blobs.punch(gaps(seg, refs[seg], fi.Size()))
		}
		if err := s.update(func(txn *badger.Txn) error {
			return txn.Set([]byte(keySwept), []byte(strconv.FormatUint(uint64(hi), 10)))
		}); err != nil {
			return freed, fmt.Errorf("sweep blob log: %w", err)
		}
	}
	return freed, nil
}

// gaps is what of a segment of size bytes the extents do not cover.
func gaps(seg uint32, ext []extent, size int64) []extent {
	slices.SortFunc(ext, func(a, b extent) int { return cmp.Compare(a.off, b.off) })
	var out []extent
	var at int64
	add := func(to int64) {
		for at < to { // an extent's length is 32 bits
			n := min(to-at, 1<<30)
			out = append(out, extent{seg: seg, off: at, n: uint32(n)})
			at += n
		}
	}
	for _, e := range ext {
		add(e.off)
		at = max(at, e.off+int64(e.n))
	}
	add(size)
	return out
}
