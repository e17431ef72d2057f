package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

// auditSpoolFile holds the audit entries written while the archive could
// not take them (its disk below the write floor, or opened read-only).
const auditSpoolFile = "audit-spool.jsonl"

// maxSpoolBytes bounds the spool: past it, the actions are refused as
// if no audit could be written.
const maxSpoolBytes = 64 << 20

// auditSpool keeps audit entries durably while the ledger refuses writes
// for lack of disk space: a full disk stays "an answer" (reads and
// exports go on, as docs/operations.md promises) without anything being
// disclosed unaudited. Each entry is appended and synced before the
// action; the node moves them into the hash chain, in order, once the
// archive takes writes again (at start and on the auditor's timer). If
// even the spool cannot be written, the action is refused (fail closed).
type auditSpool struct {
	path string
	mu   sync.Mutex
}

// spooled is an entry kept in the spool and when it happened.
type spooled struct {
	At    time.Time     `json:"at"`
	Entry consent.Entry `json:"entry"`
}

// add appends an entry and syncs it.
func (s *auditSpool) add(e consent.Entry, at time.Time) error {
	b, err := json.Marshal(spooled{At: at.UTC(), Entry: e})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && st.Size()+int64(len(b)) > maxSpoolBytes {
		f.Close()
		return fmt.Errorf("the audit spool is full (%d MiB)", maxSpoolBytes>>20)
	}
	_, werr := f.Write(append(b, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

// drain records the spooled entries in the ledger, in order, each saying
// when it happened, and removes the spool once all are in. It stops at
// the first entry the ledger refuses (still no space): the rest wait.
// A torn last line (a crash mid-append) is dropped: its action was
// refused.
func (s *auditSpool) drain(l *consent.Ledger) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var all []spooled
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var sp spooled
		if json.Unmarshal(sc.Bytes(), &sp) != nil {
			continue
		}
		all = append(all, sp)
	}
	f.Close()
	if err := sc.Err(); err != nil {
		return 0, err
	}
	for i, sp := range all {
		e := sp.Entry
		e.Reason = strings.TrimSpace(e.Reason + " (at " + sp.At.Format(time.RFC3339) + ", while the archive took no writes)")
		if _, err := l.Record(e); err != nil {
			if i > 0 {
				if werr := s.rewrite(all[i:]); werr != nil {
					return i, errors.Join(err, werr)
				}
			}
			return i, err
		}
	}
	return len(all), os.Remove(s.path)
}

// rewrite replaces the spool with the entries not yet recorded.
func (s *auditSpool) rewrite(rest []spooled) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, sp := range rest {
		b, _ := json.Marshal(sp)
		w.Write(append(b, '\n'))
	}
	err = errors.Join(w.Flush(), f.Sync(), f.Close())
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, s.path)
}
