package node

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// diskSpace reports the bytes available to this (unprivileged) process and
// the total size of the file system that holds dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return st.Bavail * bs, st.Blocks * bs, nil
}

// space guards the archive's file system so that a full disk is an
// answer, not a crash: Badger writes its value log and memtable log
// through memory maps, and a write into a mapped page the file system
// cannot back kills the process with SIGBUS. Two thresholds:
//
//   - bulk writes (an import, a fetch batch) need archive.min_free, which
//     holds one instance of the largest size plus Badger's own writes
//     (see ArchiveConfig.MinFree);
//   - every other write (grants, outbox, audit: records of a few KiB)
//     needs a quarter of it, the room Badger's memtable flushes,
//     compactions and value-log rotation take.
//
// Below the second at start, the node opens the archive read-only
// (readOnly), and every write is refused until it is restarted.
//
// The check is one statfs per call: cheap next to a synced commit.
type space struct {
	dir       string // the archive's directory; "" (in-memory archive) turns the guard off
	minFree   uint64
	readOnly  bool
	startFree uint64                                           // free bytes when the node opened the archive
	statfs    func(dir string) (free, total uint64, err error) // diskSpace; tests swap it
}

// newSpace measures the archive's file system before the archive is
// opened and decides whether it may be opened read-write. dir is the
// archive's directory (its home's, before the first start); minFree 0 or
// an in-memory archive turns the guard off.
func newSpace(dir string, minFree int64, inMemory bool) *space {
	s := &space{minFree: uint64(minFree), statfs: diskSpace}
	if inMemory || minFree == 0 {
		return s
	}
	s.dir = dir
	if free, _, err := s.statfs(dir); err == nil {
		s.startFree = free
		s.readOnly = free < s.floor()
	}
	return s
}

// diskFullError is the answer to a write the archive's free space cannot
// take. The API answers it with 507 (api.CodeInsufficientStorage).
type diskFullError struct {
	free, need uint64
	readOnly   bool // the archive was opened read-only at start
}

func (e *diskFullError) Error() string {
	if e.readOnly {
		return fmt.Sprintf("disk full: the archive is open read-only because its disk had %s free at start, less than the %s writes need (a quarter of archive.min_free); free space and restart the node",
			fmtBytes(e.free), fmtBytes(e.need))
	}
	return fmt.Sprintf("disk full: %s free, %s required margin (archive.min_free); free space on the archive's disk", fmtBytes(e.free), fmtBytes(e.need))
}

// floor is the free space every write needs.
func (s *space) floor() uint64 { return s.minFree / 4 }

// bulk checks that an import or a fetch batch may write.
func (s *space) bulk() error { return s.check(s.minFree) }

// write checks that a small write may go (the store calls it before every
// transaction).
func (s *space) write() error { return s.check(s.floor()) }

func (s *space) check(need uint64) error {
	if s == nil || s.dir == "" {
		return nil
	}
	if s.readOnly {
		return &diskFullError{free: s.startFree, need: s.floor(), readOnly: true}
	}
	if need == 0 {
		return nil
	}
	free, _, err := s.statfs(s.dir)
	if err != nil {
		return nil // an unreadable statfs is not a full disk: Badger's own errors remain
	}
	if free < need {
		return &diskFullError{free: free, need: need}
	}
	return nil
}

// fmtBytes formats a byte count for people: "1.5 GiB", "312 KiB".
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTP"[exp]) + "iB"
}
