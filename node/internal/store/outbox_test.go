package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// outboxFiles lists the files in an archive's outbox directory.
func outboxFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, outboxDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// On disk, a queued manifest's sealed bytes are in a file of their own
// (0600, outside Badger), read back whole; delivery, removing the partner
// and a failed build leave no file behind; a file no record names (a
// crash between the file and the commit) is removed when the archive
// opens, and an item queued before files, with its bytes in the record,
// still reads.
func TestOutboxFiles(t *testing.T) {
	dir, key := t.TempDir(), testKey(t)
	s, err := Open(Options{Dir: dir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	alpha, beta := testPeer(t), testPeer(t)
	sealed := map[uint64][]byte{}
	queue := func(fill string, to peer.ID) {
		t.Helper()
		err := s.QueueManifest("1.2.3", func(v uint64) (OutboxItem, error) {
			b := bytes.Repeat([]byte(fill), 100_000) // large: the value log took these before
			sealed[v] = b
			return OutboxItem{Peer: to, Kind: "study", Study: "1.2.3", Version: v, Sealed: b}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	queue("a", alpha)
	queue("b", beta)
	queue("c", alpha)
	if err := s.QueueManifest("1.2.3", func(uint64) (OutboxItem, error) { return OutboxItem{}, errors.New("seal failed") }); err == nil {
		t.Fatal("a failing build was queued")
	}
	items, err := s.Outbox()
	if err != nil || len(items) != 3 {
		t.Fatalf("outbox: %+v %v", items, err)
	}
	if n := s.sealed.size(); n != 300_000 {
		t.Errorf("outbox size %d, want 300000", n)
	}
	files := outboxFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("outbox files %q, want 3", files)
	}
	for _, it := range items {
		if len(it.Sealed) != 0 || it.File == "" || !slices.Contains(files, it.File) {
			t.Errorf("item %d: %d sealed bytes in the record, file %q", it.Seq, len(it.Sealed), it.File)
		}
		fi, err := os.Stat(filepath.Join(dir, outboxDir, it.File))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("item %d's file: %v %v", it.Seq, fi.Mode(), err)
		}
		got, err := s.OutboxSealed(it)
		if err != nil || !bytes.Equal(got, sealed[it.Version]) {
			t.Errorf("item %d reads back %d bytes, %v", it.Seq, len(got), err)
		}
	}

	// Delivered: the record and then the file go.
	if err := s.DeleteOutbox(items[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, outboxDir, items[0].File)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a delivered item's file is still there: %v", err)
	}
	// Partner removed: its items and their files go.
	if err := s.PutPeer(Peer{ID: alpha, Name: "Alpha"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePeer(alpha); err != nil {
		t.Fatal(err)
	}
	if files := outboxFiles(t, dir); len(files) != 1 || files[0] != items[1].File {
		t.Fatalf("after removing a partner: %q, want only %q", files, items[1].File)
	}

	// An item as queued before files (bytes in the record) reads as it did.
	old := OutboxItem{Seq: 99, Peer: beta, Kind: "study", Study: "1.2.4", Sealed: []byte("inline")}
	if err := s.PutOutbox(old); err != nil {
		t.Fatal(err)
	}
	// A crash between a file and its commit; a torn temporary file.
	for _, name := range []string{"00000000000000000042-0011223344556677.sealed", "00000000000000000043-0011223344556677.sealed.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, outboxDir, name), []byte("orphan"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(Options{Dir: dir, Key: key}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if files := outboxFiles(t, dir); len(files) != 1 || files[0] != items[1].File {
		t.Errorf("after reopening: %q, want only %q", files, items[1].File)
	}
	items, err = s.Outbox()
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox after reopening: %+v %v", items, err)
	}
	for _, it := range items {
		want := sealed[it.Version]
		if it.Seq == 99 {
			want = []byte("inline")
		}
		if got, err := s.OutboxSealed(it); err != nil || !bytes.Equal(got, want) {
			t.Errorf("item %d after reopening: %d bytes, %v", it.Seq, len(got), err)
		}
	}
	// A record naming a missing or foreign file is an error, not a read.
	for _, name := range []string{"00000000000000000044-0011223344556677.sealed", "../config.toml", ".sealed/x"} {
		if _, err := s.OutboxSealed(OutboxItem{Seq: 7, File: name}); err == nil {
			t.Errorf("file %q read", name)
		}
	}
}
