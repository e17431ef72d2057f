package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pfxRequestOut keys the access requests this facility's users sent to
// partners (the holders keep theirs in the consent ledger).
const pfxRequestOut = "req-out/" // + request ID → OutgoingRequest

// OutgoingRequest is an access request one of our users sent, and what
// the holder last answered.
type OutgoingRequest struct {
	ID        string    `json:"id"`
	To        peer.ID   `json:"to"`
	ToName    string    `json:"to_name"`
	User      string    `json:"user"` // our user who asked
	PatientID string    `json:"patient_id"`
	Issuer    string    `json:"issuer,omitempty"`
	BirthDate string    `json:"birth_date,omitempty"`
	Accession string    `json:"accession,omitempty"`
	Purpose   string    `json:"purpose"`
	Reason    string    `json:"reason"`
	Note      string    `json:"note,omitempty"`
	Emergency bool      `json:"emergency,omitempty"`
	Created   time.Time `json:"created"`
	// The holder's last answer: its fields, and the signed answer itself.
	State      string    `json:"state"`
	GrantID    string    `json:"grant_id,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
	DenyReason string    `json:"deny_reason,omitempty"`
	Decided    time.Time `json:"decided,omitzero"`
	Answer     []byte    `json:"answer,omitempty"`
	Checked    time.Time `json:"checked"` // when the holder last answered
	// LastError says why the request has not reached the holder yet
	// (state unsent) or why the holder refused it (state failed).
	LastError string `json:"last_error,omitempty"`
}

// OutgoingRequests lists our requests by ID.
func (s *Store) OutgoingRequests() ([]OutgoingRequest, error) {
	return list[OutgoingRequest](s, pfxRequestOut)
}

// PutOutgoingRequest stores (or replaces) one of our requests, synced.
func (s *Store) PutOutgoingRequest(r OutgoingRequest) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxRequestOut+r.ID, r) })
}
