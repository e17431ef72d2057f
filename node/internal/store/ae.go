package store

import (
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pfxAE: + AE title → AE. Application entities admins added with
// `pacsnet ae add` (those in config.toml are not stored).
const pfxAE = "ae/"

// AE is a known DICOM application entity: a modality, workstation or
// PACS allowed to associate with the node, and where C-MOVE and sending
// reach it.
type AE struct {
	Title           string    `json:"title"`
	Host            string    `json:"host"`
	Port            int       `json:"port"`
	RestrictAddress bool      `json:"restrict_address,omitempty"` // associations only from Host's addresses
	TLS             bool      `json:"tls,omitempty"`              // reach it with DICOM TLS
	Added           time.Time `json:"added"`
}

// AEs lists the stored application entities.
func (s *Store) AEs() ([]AE, error) { return list[AE](s, pfxAE) }

// PutAE stores (or replaces) an application entity.
func (s *Store) PutAE(ae AE) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxAE+ae.Title, ae) })
}

// RemoveAE deletes an application entity; found is false if there was
// none.
func (s *Store) RemoveAE(title string) (found bool, err error) {
	err = s.update(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte(pfxAE + title)); err != nil {
			if err == badger.ErrKeyNotFound {
				return nil
			}
			return err
		}
		found = true
		return txn.Delete([]byte(pfxAE + title))
	})
	return found, err
}
