package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/internal/durable"
)

// outboxDir holds the sealed manifests the outbox is waiting to deliver,
// one file each, beside Badger in the archive directory. They are kept
// out of Badger because they are large (a manifest of a 4,000-instance
// study is megabytes) and short-lived: in Badger's value log, which is
// mapped into memory, every one ever queued stayed in the node's resident
// set until the log file was rewritten (28 MB of a holder's 145 MB after
// granting one large study to five partners, docs/performance.md). A file
// is age ciphertext to its partner already, so it is not encrypted again,
// and its name is a sequence number and random hex: no patient data.
const outboxDir = "outbox"

// OutboxItem is a sealed manifest waiting for delivery. Items stay in the
// archive until the partner acknowledged them, so a restart of either side
// loses nothing. The record is in Badger; the sealed bytes are in File
// under archive/outbox/ (read them with [Store.OutboxSealed]), or in
// Sealed for items queued before that and in an archive held in memory.
type OutboxItem struct {
	Seq      uint64    `json:"seq"`
	Peer     peer.ID   `json:"peer"`
	Kind     string    `json:"kind"`
	Study    string    `json:"study"`
	GrantID  string    `json:"grant,omitempty"`
	Version  uint64    `json:"version"`
	Sealed   []byte    `json:"sealed,omitempty"`
	File     string    `json:"file,omitempty"`
	Size     int       `json:"size,omitempty"` // of the sealed bytes
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"` // not before this time
	LastErr  string    `json:"last_error,omitempty"`
}

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", pfxOutbox, seq) }

// NextManifestVersion increments and returns the study's manifest counter.
func (s *Store) NextManifestVersion(study string) (uint64, error) {
	var v uint64
	err := s.update(func(txn *badger.Txn) error {
		var err error
		v, err = nextSeq(txn, keyMSeq+study)
		return err
	})
	return v, err
}

// QueueManifest numbers the study's next manifest, has build make the
// outbox item for that version, and queues it, in one transaction: a
// version is never used twice, and a queued item is never lost. The
// sealed bytes are written to their own file and synced before the
// record that names them is committed, so a crash between the two leaves
// at most a file no record names, which the next Open removes.
func (s *Store) QueueManifest(study string, build func(version uint64) (OutboxItem, error)) error {
	var written []string // files of attempts a conflict retried, and of the last one
	var kept string
	err := s.update(func(txn *badger.Txn) error {
		kept = ""
		v, err := nextSeq(txn, keyMSeq+study)
		if err != nil {
			return err
		}
		it, err := build(v)
		if err != nil {
			return err
		}
		if it.Seq, err = nextSeq(txn, keyOutSeq); err != nil {
			return err
		}
		it.Next = it.Created
		if s.sealed != nil && len(it.Sealed) > 0 {
			name, err := s.sealed.write(it.Seq, it.Sealed)
			if err != nil {
				return err
			}
			written = append(written, name)
			kept = name
			it.File, it.Size, it.Sealed = name, len(it.Sealed), nil
		}
		return setJSON(txn, outboxKey(it.Seq), it)
	})
	for _, name := range written {
		if err != nil || name != kept {
			s.sealed.remove(name)
		}
	}
	return err
}

// OutboxSealed reads an item's sealed manifest.
func (s *Store) OutboxSealed(it OutboxItem) ([]byte, error) {
	if it.File == "" {
		if len(it.Sealed) == 0 {
			return nil, fmt.Errorf("outbox item %d has no sealed manifest", it.Seq)
		}
		return it.Sealed, nil
	}
	if s.sealed == nil {
		return nil, fmt.Errorf("outbox item %d names a file, and this archive has none", it.Seq)
	}
	b, err := s.sealed.read(it.File, it.Size)
	if err != nil {
		return nil, fmt.Errorf("outbox item %d: %w", it.Seq, err)
	}
	return b, nil
}

// Outbox lists the queued items in order (without their sealed bytes
// where those are in files).
func (s *Store) Outbox() ([]OutboxItem, error) { return list[OutboxItem](s, pfxOutbox) }

// PutOutbox updates a queued item (attempts, next try).
func (s *Store) PutOutbox(it OutboxItem) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, outboxKey(it.Seq), it) })
}

// DeleteOutbox removes a delivered item, and then its file.
func (s *Store) DeleteOutbox(seq uint64) error {
	var file string
	err := s.update(func(txn *badger.Txn) error {
		var it OutboxItem
		if _, err := getJSON(txn, outboxKey(seq), &it); err != nil {
			return err
		}
		file = it.File
		return txn.Delete([]byte(outboxKey(seq)))
	})
	if err == nil && file != "" {
		s.sealed.remove(file)
	}
	return err
}

// sealedDir is the outbox's directory of sealed manifests, one file each.
// A nil *sealedDir (an archive in memory) holds nothing.
type sealedDir struct {
	dir string
	log *slog.Logger
}

// openSealed makes the directory and, unless the archive is read-only,
// removes what no queued item names (named): files of a queueing that a
// crash cut short before its commit, of a delivered item whose file was
// not yet removed, and temporary files.
func openSealed(dir string, log *slog.Logger, readOnly bool, named func() (map[string]bool, error)) (*sealedDir, error) {
	d := &sealedDir{dir: dir, log: log}
	if readOnly {
		return d, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return d, err
	}
	keep, err := named()
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return d, nil
}

// write writes a sealed manifest to a file of its own, synced into the
// directory, and returns its name.
func (d *sealedDir) write(seq uint64, sealed []byte) (string, error) {
	var r [8]byte
	rand.Read(r[:])
	name := fmt.Sprintf("%020d-%s.sealed", seq, hex.EncodeToString(r[:]))
	path := filepath.Join(d.dir, name)
	if err := durable.WriteFile(path, sealed, 0o600); err != nil {
		os.Remove(path) // renamed but its directory not synced: no record will name it
		return "", fmt.Errorf("outbox: write sealed manifest: %w", err)
	}
	return name, nil
}

// read reads a sealed manifest of size bytes (0: unknown).
func (d *sealedDir) read(name string, size int) ([]byte, error) {
	if !validSealedName(name) {
		return nil, fmt.Errorf("%q names no file of the outbox", name)
	}
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("its sealed manifest %s is missing from archive/%s/ (an archive copied without that folder?); granting the study again queues a new one", name, outboxDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read its sealed manifest: %w", err)
	}
	if size != 0 && len(b) != size {
		return nil, fmt.Errorf("its sealed manifest has %d bytes, %d were written", len(b), size)
	}
	return b, nil
}

// remove deletes a sealed manifest's file; a failure only leaves a file
// that the next open removes.
func (d *sealedDir) remove(name string) {
	if d == nil || !validSealedName(name) {
		return
	}
	if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("outbox: remove delivered manifest's file", "err", err)
	}
}

// validSealedName reports whether name is one write makes: a record never
// names a path outside the outbox directory.
func validSealedName(name string) bool {
	return strings.HasSuffix(name, ".sealed") && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, ".")
}

// size is the bytes of the sealed manifests waiting.
func (d *sealedDir) size() int64 {
	if d == nil {
		return 0
	}
	ents, _ := os.ReadDir(d.dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
