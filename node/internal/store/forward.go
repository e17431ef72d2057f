package store

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pfxForward: + %020d sequence → ForwardItem. Studies fetched from
// partners waiting to be sent to the AE dicom.forward_to names.
const (
	pfxForward    = "forward/"
	keyForwardSeq = "meta/forward-seq"
)

// PrefixForward is pfxForward, for tests that look at the raw archive.
const PrefixForward = pfxForward

// ForwardItem is a study to send to a DICOM AE. It stays in the archive
// until the AE stored every instance, so a restart loses nothing.
type ForwardItem struct {
	Seq   uint64 `json:"seq"`
	Study string `json:"study"`
	AE    string `json:"ae"`
	// Queued counts the fetches that asked for this item: one completing
	// while the item is being sent makes the forwarder send it again.
	Queued   int       `json:"queued"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"` // not before this time
	LastErr  string    `json:"last_error,omitempty"`
	// Refused: the AE was reached and did not store every instance; the
	// items queued after this one need not wait for it.
	Refused bool `json:"refused,omitempty"`
}

func forwardKey(seq uint64) string { return fmt.Sprintf("%s%020d", pfxForward, seq) }

// Forwards lists the queued items in order.
func (s *Store) Forwards() ([]ForwardItem, error) { return list[ForwardItem](s, pfxForward) }

// PutForward stores an item, numbering it first when its Seq is 0; it
// returns the item as stored.
func (s *Store) PutForward(it ForwardItem) (ForwardItem, error) {
	err := s.update(func(txn *badger.Txn) error {
		if it.Seq == 0 {
			seq, err := nextSeq(txn, keyForwardSeq)
			if err != nil {
				return err
			}
			it.Seq = seq
		}
		return setJSON(txn, forwardKey(it.Seq), it)
	})
	return it, err
}

// DeleteForward removes a delivered (or dropped) item.
func (s *Store) DeleteForward(seq uint64) error {
	return s.update(func(txn *badger.Txn) error { return txn.Delete([]byte(forwardKey(seq))) })
}
