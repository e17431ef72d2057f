package access

import (
	"sync"
	"time"
)

// Backoff slows down password guessing, keyed by user name or by source
// address: the first Free failures cost nothing; each one after that
// refuses every attempt for Base doubled per further failure, at most Max
// (a correct password within the wait is refused too, so guessing stays
// slow). A success clears the key; a key quiet for Forget is dropped.
// At most MaxKeys keys are held (the oldest go first), so a flood of
// made-up names cannot grow it without bound. Safe for concurrent use.
type Backoff struct {
	Free    int
	Base    time.Duration
	Max     time.Duration
	Forget  time.Duration
	MaxKeys int

	mu sync.Mutex
	m  map[string]*backoffState
}

type backoffState struct {
	fails int
	until time.Time // refused before this
	last  time.Time
}

// DefaultBackoff: 5 free failures, then 1s, 2s, 4s … at most 15 min;
// forgotten after a quiet day; 10000 keys.
func DefaultBackoff() *Backoff {
	return &Backoff{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour, MaxKeys: 10000}
}

// Wait is how long key must still wait before its next attempt (0: it
// may try now).
func (b *Backoff) Wait(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.get(key, now)
	if st == nil || !now.Before(st.until) {
		return 0
	}
	return st.until.Sub(now)
}

// Fail counts a failed attempt for key and returns the wait it now has
// (0 while within the free failures).
func (b *Backoff) Fail(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*backoffState{}
	}
	st := b.get(key, now)
	if st == nil {
		b.prune(now)
		st = &backoffState{}
		b.m[key] = st
	}
	st.fails++
	st.last = now
	if st.fails <= b.Free {
		return 0
	}
	d := b.Base
	for i := b.Free + 1; i < st.fails && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	st.until = now.Add(d)
	return d
}

// Failures is the count of failures held for key.
func (b *Backoff) Failures(key string, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.get(key, now); st != nil {
		return st.fails
	}
	return 0
}

// Succeed clears key.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
}

func (b *Backoff) get(key string, now time.Time) *backoffState {
	st, ok := b.m[key]
	if !ok {
		return nil
	}
	if now.Sub(st.last) >= b.Forget && !now.Before(st.until) {
		delete(b.m, key)
		return nil
	}
	return st
}

// prune makes room for one more key.
func (b *Backoff) prune(now time.Time) {
	if b.MaxKeys <= 0 || len(b.m) < b.MaxKeys {
		return
	}
	for k, st := range b.m {
		if now.Sub(st.last) >= b.Forget && !now.Before(st.until) {
			delete(b.m, k)
		}
	}
	for len(b.m) >= b.MaxKeys {
		var oldest string
		var t time.Time
		for k, st := range b.m {
			if oldest == "" || st.last.Before(t) {
				oldest, t = k, st.last
			}
		}
		delete(b.m, oldest)
	}
}
