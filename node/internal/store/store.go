// Package store is the node's archive: the one place that knows Badger.
// Every key, every transaction and every record encoding lives here, behind
// typed methods; no transaction ever leaves the package. It opens a real
// Badger database on disk, encrypted at rest, or Badger's own in-memory
// mode for simulations and tests.
//
// store imports internal/wire (the records it keeps are the wire records
// manifests carry) and consent (it implements consent.Store). It must not
// import node, exchange, cmd or netsim.
package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/pacsnet/pacsnet/consent"
)

// Key prefixes. docs/architecture.md (On-disk layout) lists them; consent
// owns "consent/" and "audit/".
const (
	pfxBlock    = "blk/"    // + CID bytes → age ciphertext block (archives written before the blob log)
	pfxBlockRef = "bref/"   // + CID bytes → where the block is in the blob log (segment, offset, length)
	pfxBlockIdx = "bix/"    // + CID bytes → Study Instance UID the block belongs to
	pfxStudy    = "study/"  // + study UID → Study
	pfxInstance = "inst/"   // + study UID + "/" + SOP Instance UID → wire.Instance
	pfxSOP      = "sop/"    // + SOP Instance UID → study UID (uniqueness across studies)
	pfxPeer     = "peer/"   // + peer ID → Peer
	pfxShared   = "shared/" // + issuer peer ID + "/" + study UID → Shared
	pfxOutbox   = "outbox/" // + %020d sequence → OutboxItem
	keyMSeq     = "meta/manifest-seq/"
	keyOutSeq   = "meta/outbox-seq"
)

// ErrNotFound is returned when a record or block is absent.
var ErrNotFound = errors.New("not found")

// Options say where the archive lives.
type Options struct {
	// Dir is the Badger directory. Ignored when InMemory is set.
	Dir string
	// InMemory runs Badger's in-memory mode: nothing touches the disk
	// (simulations, tests).
	InMemory bool
	// Key is Badger's AES-256 encryption key (32 bytes).
	Key []byte
	// ValueLogFileSize bounds one value-log file; 0 means 256 MiB. Badger
	// scans the active one on open, so keep it moderate.
	ValueLogFileSize int64
	// ReadOnly opens the archive for reading only (Badger's read-only
	// mode): nothing is written to Dir, not even on open, and every write
	// fails with ErrReadOnly. The node opens it so when the disk is too
	// full for Badger to open read-write safely.
	ReadOnly bool
	// Guard, if set, is asked before every write transaction; its error
	// refuses the write (the node's free-space guard: Badger crashes
	// rather than fails on a full disk).
	Guard  func() error
	Logger *slog.Logger
}

// Store is the node's Badger archive, encrypted at rest. Only one process
// may open a directory.
type Store struct {
	db    *badger.DB
	blobs *blobs // block ciphertext; nil in memory (blocks then stay in Badger)
	// sealed holds sealed manifests awaiting delivery (outbox.go); nil
	// in memory (they then stay in their Badger records).
	sealed   *sealedDir
	log      *slog.Logger
	readOnly bool
	guard    func() error

	// commitMu serialises commits that update a study record (imports,
	// fetch batches): Badger writes one at a time anyway, and optimistic
	// retries on a hot study record ran out under 128 concurrent imports.
	commitMu sync.Mutex

	// studyGen counts the commits that may have changed a study record
	// (each is under commitMu); Studies keeps its last listing with the
	// generation it was read at, so that a search over 10,000 studies
	// does not decode 10,000 records while nothing changed.
	studyGen    atomic.Uint64
	studiesMu   sync.Mutex
	studies     []Study
	studiesGen  uint64
	studiesRead bool
}

// ErrLocked is returned by Open when another process holds the directory.
var ErrLocked = errors.New("another process is using this archive")

// ErrReadOnly is returned by every write to an archive opened ReadOnly.
var ErrReadOnly = errors.New("the archive is open read-only")

// Open opens (creating if needed) the archive.
func Open(o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = 256 << 20
	}
	opts := badger.DefaultOptions(o.Dir).
		WithEncryptionKey(o.Key).
		WithIndexCacheSize(16 << 20).  // required by Badger when encryption is on; records only (blocks are in the blob log)
		WithSyncWrites(true).          // acknowledged means durable: every commit is fsynced
		WithCompression(options.None). // ciphertext does not compress
		WithValueThreshold(64 << 10).  // large values go to the value log (faster, and big instances fit a transaction)
		WithValueLogFileSize(o.ValueLogFileSize).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{o.Logger})
	if o.InMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true).WithSyncWrites(false)
	} else {
		// Block ciphertext is in the blob log: Badger holds records only,
		// so smaller memtables (16 MiB, 2.4 MB transactions of small
		// values; large values go to its value log and do not count) and
		// a smaller block cache keep the node's memory down: a C-STORE
		// peak RSS of ~90 MB against ~220 MB with Badger's defaults, a
		// fetch of a 2 GB study under 150 MB (docs/performance.md).
		opts = opts.WithMemTableSize(16 << 20).WithBlockCacheSize(16 << 20)
		if o.ReadOnly {
			opts = opts.WithReadOnly(true)
		}
	}
	db, err := badger.Open(opts)
	if err != nil {
		// Badger formats its lock error with %+v, not %w: its text is all
		// there is to recognise it by.
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("open archive: %w", ErrLocked)
		}
		return nil, fmt.Errorf("open archive: %w", err)
	}
	st := &Store{db: db, log: o.Logger, readOnly: o.ReadOnly && !o.InMemory, guard: o.Guard}
	if !o.InMemory {
		if st.blobs, err = openBlobs(filepath.Join(o.Dir, blobsDir)); err != nil {
			db.Close()
			return nil, err
		}
		named := func() (map[string]bool, error) {
			items, err := st.Outbox()
			keep := map[string]bool{}
			for _, it := range items {
				keep[it.File] = true
			}
			return keep, err
		}
		if st.sealed, err = openSealed(filepath.Join(o.Dir, outboxDir), o.Logger, st.readOnly, named); err != nil {
			st.blobs.close()
			db.Close()
			return nil, err
		}
		if !st.readOnly && !PunchSupported(st.sealed.dir) {
			o.Logger.Warn("archive: this file system cannot punch holes in files: the space that instances which were not stored (rejected, cut off) took in archive/blobs/ is not freed")
		}
	}
	return st, nil
}

// Size is the bytes the archive takes on disk (LSM tree, value log, blob
// log and the outbox's sealed manifests).
func (s *Store) Size() int64 {
	lsm, vlog := s.db.Size()
	n := lsm + vlog
	if s.blobs != nil {
		n += s.blobs.size()
	}
	return n + s.sealed.size()
}

// ReadOnly reports whether the archive was opened read-only.
func (s *Store) ReadOnly() bool { return s.readOnly }

// Close closes the database.
func (s *Store) Close() error {
	if s.blobs != nil {
		s.blobs.close()
	}
	return s.db.Close()
}

// get reads key into v; ok is false when the key is absent.
func getJSON(txn *badger.Txn, key string, v any) (ok bool, err error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn *badger.Txn, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set([]byte(key), b)
}

func getString(txn *badger.Txn, key string) (string, bool, error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var s string
	err = it.Value(func(b []byte) error { s = string(b); return nil })
	return s, true, err
}

// view reads one JSON record.
func view[T any](s *Store, key string) (T, bool, error) {
	var v T
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = getJSON(txn, key, &v)
		return err
	})
	return v, ok, err
}

// scan calls fn for each record under prefix, decoded into a new T.
func scan[T any](s *Store, prefix string, fn func(v *T) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v := new(T)
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
				return fmt.Errorf("decode %s: %w", item.Key(), err)
			}
			if err := fn(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// list collects every record under prefix.
func list[T any](s *Store, prefix string) ([]T, error) {
	var out []T
	err := scan(s, prefix, func(v *T) error { out = append(out, *v); return nil })
	return out, err
}

// update runs fn in a read-write transaction, retrying on Badger's
// optimistic-concurrency conflicts.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if s.guard != nil {
		if err := s.guard(); err != nil {
			return err
		}
	}
	if s.readOnly {
		return ErrReadOnly
	}
	for i := 0; ; i++ {
		err := s.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && i < 20 {
			time.Sleep(time.Duration(i+1) * time.Millisecond)
			continue
		}
		return err
	}
}

// nextSeq increments the counter at key inside txn and returns the new value.
func nextSeq(txn *badger.Txn, key string) (uint64, error) {
	var v uint64
	it, err := txn.Get([]byte(key))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return 0, err
	default:
		if err := it.Value(func(b []byte) error {
			if len(b) != 8 {
				return errors.New("corrupt counter")
			}
			v = binary.BigEndian.Uint64(b)
			return nil
		}); err != nil {
			return 0, err
		}
	}
	v++
	return v, txn.Set([]byte(key), binary.BigEndian.AppendUint64(nil, v))
}

// Commit implements consent.Store: one synced transaction.
func (s *Store) Commit(kvs []consent.KV) error {
	return s.update(func(txn *badger.Txn) error {
		for _, kv := range kvs {
			if err := txn.Set(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// Scan implements consent.Store.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

var _ consent.Store = (*Store)(nil)

// GC runs value-log GC rounds until one has nothing to rewrite and returns
// how many files were rewritten.
func (s *Store) GC(ctx context.Context) int {
	files := 0
	for !s.readOnly && ctx.Err() == nil && s.db.RunValueLogGC(0.5) == nil {
		files++ // each success rewrote one value-log file
	}
	return files
}

// badgerLogger routes Badger's logging into slog at debug level except
// warnings and errors; Badger logs no values.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(badgerLine(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(badgerLine(f, a)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(badgerLine(f, a)) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

// badgerLine formats a Badger log line without its trailing newline.
func badgerLine(f string, a []any) string {
	return "badger: " + strings.TrimRight(fmt.Sprintf(f, a...), "\n")
}

// Key prefixes, for tests and diagnostics that look at the raw archive.
const (
	PrefixBlock    = pfxBlock
	PrefixBlockIdx = pfxBlockIdx
	PrefixStudy    = pfxStudy
	PrefixInstance = pfxInstance
	PrefixSOP      = pfxSOP
	PrefixPeer     = pfxPeer
	PrefixShared   = pfxShared
	PrefixOutbox   = pfxOutbox
)
