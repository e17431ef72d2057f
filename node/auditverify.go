package node

import (
	"errors"
	"fmt"
	"github.com/pacsnet/pacsnet/api"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// ErrServing is returned by [VerifyAudit] when a node is serving the
// home: its archive is locked, and the running node's API verifies.
var ErrServing = errors.New("a node is serving this home")

// VerifyAudit checks every hash and link of the audit log of a home no
// node is serving, so that an auditor can verify a stopped node (after an
// incident, or a restored backup) without starting it. A broken chain is
// an answer (OK false, Error naming the first bad entry), not an error; a
// home a node is serving is [ErrServing].
func VerifyAudit(home string, given ...api.SignedAuditCheckpoint) (api.AuditVerify, error) {
	var cps []*consent.SignedCheckpoint
	if len(given) > 0 {
		var err error
		if cps, err = parseCheckpoints(given); err != nil {
			return api.AuditVerify{}, err
		}
	}
	return verifyAnswer(verifyAudit(home, cps))
}

func verifyAudit(home string, cps []*consent.SignedCheckpoint) (consent.VerifyResult, error) {
	if _, err := os.Stat(filepath.Join(home, "config.toml")); errors.Is(err, os.ErrNotExist) {
		return consent.VerifyResult{}, noHomeError{home}
	}
	keys, err := loadKeys(home)
	if err != nil {
		return consent.VerifyResult{}, err
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(home, archiveDir), Key: keys.archiveKey,
		ValueLogFileSize: valueLogFileSize, Logger: slog.New(slog.DiscardHandler)})
	if errors.Is(err, store.ErrLocked) {
		return consent.VerifyResult{}, ErrServing
	}
	if err != nil {
		return consent.VerifyResult{}, err
	}
	defer st.Close()
	l, err := consent.Open(st, keys.id.Sign, time.Now)
	if err != nil {
		return consent.VerifyResult{}, fmt.Errorf("verify audit log: %w", err)
	}
	return l.Verify(cps...)
}
