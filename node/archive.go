package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/ipfs/go-cid"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// Key prefixes in the Badger archive. docs/architecture.md (On-disk layout)
// lists them; consent owns "consent/" and "audit/".
const (
	pfxBlock    = "blk/"    // + CID bytes → age ciphertext block
	pfxBlockIdx = "bix/"    // + CID bytes → Study Instance UID the block belongs to
	pfxStudy    = "study/"  // + study UID → studyRecord
	pfxInstance = "inst/"   // + study UID + "/" + SOP Instance UID → instanceRecord
	pfxSOP      = "sop/"    // + SOP Instance UID → study UID (uniqueness across studies)
	pfxPeer     = "peer/"   // + peer ID → Peer
	pfxShared   = "shared/" // + issuer peer ID + "/" + study UID → sharedRecord
	pfxOutbox   = "outbox/" // + %020d sequence → outboxItem
	keyMSeq     = "meta/manifest-seq/"
	keyOutSeq   = "meta/outbox-seq"
)

// valueLogFileSize bounds one value-log file: moderate, because Badger
// scans the active one on open. A variable so a test can make GC reachable.
var valueLogFileSize int64 = 256 << 20

// archive is the node's Badger database, encrypted at rest with Badger's
// AES encryption. Only one process may open it.
type archive struct {
	db  *badger.DB
	log *slog.Logger
}

func openArchive(dir string, key []byte, log *slog.Logger) (*archive, error) {
	opts := badger.DefaultOptions(dir).
		WithEncryptionKey(key).
		WithIndexCacheSize(64 << 20).  // required by Badger when encryption is on
		WithSyncWrites(true).          // acknowledged means durable: every commit is fsynced
		WithCompression(options.None). // ciphertext does not compress
		WithValueThreshold(64 << 10).  // large values go to the value log (faster, and big instances fit a transaction)
		WithValueLogFileSize(valueLogFileSize).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{log})
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return &archive{db: db, log: log}, nil
}

func (a *archive) Close() error { return a.db.Close() }

// getJSON reads key into v; ok is false when the key is absent.
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

// scanJSON calls fn for each value under prefix, decoded into a new T.
func scanJSON[T any](a *archive, prefix string, fn func(key []byte, v *T) error) error {
	return a.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v := new(T)
			if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
				return fmt.Errorf("decode %s: %w", item.Key(), err)
			}
			if err := fn(item.KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// update runs fn in a read-write transaction, retrying on Badger's
// optimistic-concurrency conflicts.
func (a *archive) update(fn func(txn *badger.Txn) error) error {
	for i := 0; ; i++ {
		err := a.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) && i < 20 {
			time.Sleep(time.Duration(i+1) * time.Millisecond)
			continue
		}
		return err
	}
}

func blockKey(c cid.Cid) []byte    { return append([]byte(pfxBlock), c.Bytes()...) }
func blockIdxKey(c cid.Cid) []byte { return append([]byte(pfxBlockIdx), c.Bytes()...) }

// GetBlock implements exchange.BlockStore.
func (a *archive) GetBlock(_ context.Context, c cid.Cid) ([]byte, error) {
	var out []byte
	err := a.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockKey(c))
		if err != nil {
			return err
		}
		out, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get block %s: %w", c, exchange.ErrBlockNotFound)
	}
	return out, err
}

// hasBlock reports whether the block is stored.
func (a *archive) hasBlock(c cid.Cid) (bool, error) {
	err := a.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blockKey(c))
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// blockStudy returns the study a stored block belongs to.
func (a *archive) blockStudy(c cid.Cid) (string, error) {
	var study string
	err := a.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blockIdxKey(c))
		if err != nil {
			return err
		}
		return it.Value(func(b []byte) error { study = string(b); return nil })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", exchange.ErrBlockNotFound
	}
	return study, err
}

// putBlock stores one verified block durably. Blocks arriving from a
// fetch are not yet indexed to a study: the index is written with the
// instance once the whole instance has been verified.
func (a *archive) putBlock(c cid.Cid, data []byte) error {
	return a.update(func(txn *badger.Txn) error { return txn.Set(blockKey(c), data) })
}

// Commit implements consent.Store: one synced transaction.
func (a *archive) Commit(kvs []consent.KV) error {
	return a.update(func(txn *badger.Txn) error {
		for _, kv := range kvs {
			if err := txn.Set(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

// Scan implements consent.Store.
func (a *archive) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return a.db.View(func(txn *badger.Txn) error {
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

var _ consent.Store = (*archive)(nil)
var _ exchange.BlockStore = (*archive)(nil)

// valueLogGCInterval is how often the archive reclaims value-log space of
// deleted and overwritten values (delivered outbox items, rewritten
// records).
const valueLogGCInterval = 10 * time.Minute

// runGC runs Badger's value-log GC every interval until ctx is done. v4.9.6
// carries the fix for deleted keys reappearing after a GC rewrite (badger
// #2286, PR #2310), which is why the archive may run it at all.
func (a *archive) runGC(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		files := 0
		for ctx.Err() == nil && a.db.RunValueLogGC(0.5) == nil {
			files++ // each success rewrote one value-log file
		}
		if files > 0 {
			a.log.Info("archive value-log GC", "files_rewritten", files)
		}
	}
}

// badgerLogger routes Badger's logging into slog at debug level except
// warnings and errors; Badger logs no values.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(badgerLine(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(badgerLine(f, a)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(badgerLine(f, a)) }

// badgerLine formats a Badger log line without its trailing newline.
func badgerLine(f string, a []any) string {
	return "badger: " + strings.TrimRight(fmt.Sprintf(f, a...), "\n")
}
func (b badgerLogger) Debugf(f string, a ...any) {}
