package consent

import (
	"bytes"
	"errors"
	"slices"
	"sync"
)

// KV is one key/value pair written by [Store.Commit].
type KV struct{ Key, Value []byte }

// Store is the ledger's durable storage.
type Store interface {
	// Commit writes all kvs atomically and durably (synced) before
	// returning: after a crash, either all of them are present or none.
	// Commit must not keep references to the slices.
	Commit(kvs []KV) error
	// Scan calls fn for every key with the prefix, in key order. key and
	// value are valid only during fn. An error from fn stops the scan and
	// is returned as is.
	Scan(prefix []byte, fn func(key, value []byte) error) error
}

// MemStore is an in-memory [Store] for tests (the node's too). Scan works
// on a snapshot taken when it starts, so fn may call Commit.
type MemStore struct {
	mu   sync.RWMutex
	m    map[string][]byte
	keys []string // sorted
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: make(map[string][]byte)} }

// Commit implements [Store].
func (s *MemStore) Commit(kvs []KV) error {
	for _, kv := range kvs {
		if len(kv.Key) == 0 {
			return errors.New("commit: empty key")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range kvs {
		k := string(kv.Key)
		if _, ok := s.m[k]; !ok {
			i, _ := slices.BinarySearch(s.keys, k)
			s.keys = slices.Insert(s.keys, i, k)
		}
		s.m[k] = bytes.Clone(kv.Value)
	}
	return nil
}

// Scan implements [Store].
func (s *MemStore) Scan(prefix []byte, fn func(key, value []byte) error) error {
	type kv struct {
		k string
		v []byte
	}
	s.mu.RLock()
	p := string(prefix)
	i, _ := slices.BinarySearch(s.keys, p)
	var snap []kv
	for ; i < len(s.keys) && len(s.keys[i]) >= len(p) && s.keys[i][:len(p)] == p; i++ {
		snap = append(snap, kv{s.keys[i], s.m[s.keys[i]]})
	}
	s.mu.RUnlock()
	for _, e := range snap {
		if err := fn([]byte(e.k), bytes.Clone(e.v)); err != nil { // a careless fn cannot corrupt the store
			return err
		}
	}
	return nil
}

// delete removes a key; tests use it to simulate tampering.
func (s *MemStore) delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return
	}
	delete(s.m, key)
	i, _ := slices.BinarySearch(s.keys, key)
	s.keys = slices.Delete(s.keys, i, i+1)
}
