package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
)

// Keys of multi-source fetching (issue 9):
//
//   - at a study's original holder, the partners that announced they hold
//     it and serve it as secondary holders;
//   - at a grantee, the holders the original holder last listed, so that
//     a fetch still finds them while the original holder is unreachable;
//   - at a secondary holder, the original holders' revocations of grants
//     to third facilities, which it checks presented grants against, and
//     the studies it announced (to withdraw them when it stops serving).
const (
	pfxHolder     = "holder/"     // + study UID + "/" + peer ID → Holder
	pfxHolderList = "holder-ls/"  // + issuer peer ID + "/" + study UID → HolderList
	pfxForeignRev = "foreign-rv/" // + issuer peer ID + "/" + grant ID → consent.SignedRevocation
	pfxAnnounced  = "announced/"  // + issuer peer ID + "/" + study UID → Announced
)

// Announced is a study this facility told its holder it serves as a
// secondary.
type Announced struct {
	Issuer peer.ID   `json:"issuer"`
	Study  string    `json:"study"`
	Grant  string    `json:"grant"` // the grant the announcement carried
	At     time.Time `json:"at"`
}

// PutAnnounced records an announcement.
func (s *Store) PutAnnounced(a Announced) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxAnnounced+a.Issuer.String()+"/"+a.Study, a) })
}

// AnnouncedAll lists the announcements made.
func (s *Store) AnnouncedAll() ([]Announced, error) { return list[Announced](s, pfxAnnounced) }

// DeleteAnnounced forgets an announcement (it was withdrawn).
func (s *Store) DeleteAnnounced(issuer peer.ID, study string) error {
	return s.update(func(txn *badger.Txn) error { return txn.Delete([]byte(pfxAnnounced + issuer.String() + "/" + study)) })
}

// DeleteHolder forgets a secondary holder of one of our studies.
func (s *Store) DeleteHolder(study string, p peer.ID) error {
	return s.update(func(txn *badger.Txn) error { return txn.Delete([]byte(pfxHolder + study + "/" + p.String())) })
}

// Holder is a partner that fetched one of our studies under a grant of
// ours (naming no user) and serves it as a secondary holder.
type Holder struct {
	Peer    peer.ID   `json:"peer"`
	GrantID string    `json:"grant"` // the grant it fetched under; listed while that grant is live
	Since   time.Time `json:"since"`
}

// HolderList is what a study's original holder last told us of the
// study's secondary holders.
type HolderList struct {
	Holders  []peer.ID `json:"holders"`
	Received time.Time `json:"received"`
}

// PutHolder records (or renews) a secondary holder of one of our studies.
func (s *Store) PutHolder(study string, h Holder) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxHolder+study+"/"+h.Peer.String(), h) })
}

// Holders lists the recorded secondary holders of one of our studies.
func (s *Store) Holders(study string) ([]Holder, error) { return list[Holder](s, pfxHolder+study+"/") }

// PutHolderList keeps the holders issuer listed for study.
func (s *Store) PutHolderList(issuer peer.ID, study string, l HolderList) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxHolderList+issuer.String()+"/"+study, l) })
}

// HolderList reads the holders issuer last listed for study.
func (s *Store) HolderList(issuer peer.ID, study string) (HolderList, bool, error) {
	return view[HolderList](s, pfxHolderList+issuer.String()+"/"+study)
}

// PutForeignRevocation keeps another facility's signed revocation of a
// grant it gave a third facility. The caller has verified it.
func (s *Store) PutForeignRevocation(rv consent.SignedRevocation) error {
	return s.update(func(txn *badger.Txn) error {
		return setJSON(txn, pfxForeignRev+rv.Revocation.Issuer.String()+"/"+rv.Revocation.GrantID, rv)
	})
}

// ForeignRevoked reports whether issuer's revocation of grant is held.
func (s *Store) ForeignRevoked(issuer peer.ID, grant string) (bool, error) {
	_, ok, err := view[consent.SignedRevocation](s, pfxForeignRev+issuer.String()+"/"+grant)
	return ok, err
}
