package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// StudyInfo is what the index and manifests say about a study.
type StudyInfo = wire.Study

// InstanceInfo is the index entry of one instance; manifests carry the
// same record.
type InstanceInfo = wire.Instance

// BlockRef names one ciphertext block of an instance.
type BlockRef = wire.BlockRef

// Study is a study held here, as listings show it.
type Study struct {
	StudyInfo
	Origin     peer.ID
	OriginName string
	Instances  int
	Expected   int  // fetched studies: what the manifest lists
	Complete   bool // false while a fetched study lacks instances
	Bytes      int64
	Updated    time.Time
}

// errIncomplete is returned when a partly fetched study is exported
// without asking for a partial export.
var errIncomplete = errors.New("study is incomplete")

// archive is the read side of the local archive: listings, verified
// instance reads and exports.
type archive struct {
	store *store.Store
	keys  *keyring
	audit *auditor
}

// Studies lists the studies in the local archive.
func (a *archive) Studies() ([]Study, error) {
	recs, err := a.store.Studies()
	var out []Study
	for _, r := range recs {
		if r.Instances > 0 {
			out = append(out, Study{StudyInfo: r.Study, Origin: r.Origin, OriginName: r.OriginName,
				Instances: r.Instances, Expected: r.Expected, Complete: r.Complete(), Bytes: r.Bytes, Updated: r.Updated})
		}
	}
	return out, err
}

// Instances lists a local study's instances.
func (a *archive) Instances(study string) ([]InstanceInfo, error) {
	if _, ok, err := a.store.Study(study); err != nil {
		return nil, err
	} else if !ok {
		return nil, errStudyNotFound
	}
	return a.store.Instances(study)
}

// InstanceData returns one instance's Part-10 bytes, verified against its
// digest.
func (a *archive) InstanceData(study, sop string) ([]byte, InstanceInfo, error) {
	rec, ok, err := a.store.Instance(study, sop)
	if err != nil {
		return nil, rec, err
	}
	if !ok {
		return nil, rec, errStudyNotFound
	}
	b, err := a.read(rec)
	return b, rec, err
}

// read decrypts one stored instance and checks it against its digest:
// corrupted storage is reported, never served.
func (a *archive) read(rec InstanceInfo) ([]byte, error) {
	sk, err := a.keys.Key(rec.Study)
	if err != nil {
		return nil, err
	}
	var ct []byte
	for _, br := range rec.Blocks {
		c, err := cid.Decode(br.CID)
		if err != nil {
			return nil, fmt.Errorf("read instance: %w", err)
		}
		b, err := a.store.GetBlock(context.Background(), c)
		if err != nil {
			return nil, fmt.Errorf("read instance: %w", err)
		}
		ct = append(ct, b...)
	}
	plain, err := crypto.Decrypt(ct, sk)
	if err != nil {
		return nil, fmt.Errorf("decrypt instance: %w", err)
	}
	if sum := sha256.Sum256(plain); hex.EncodeToString(sum[:]) != rec.Digest {
		return nil, errors.New("read instance: plaintext does not match its recorded SHA-256")
	}
	return plain, nil
}

// ExportRequest asks the node to write a study's instances to a folder.
type ExportRequest struct {
	Study        string
	Out          string // absolute folder on the node's machine
	AllowPartial bool
	Actor        string
}

// ExportedFile is one file an export wrote.
type ExportedFile struct {
	Path           string
	SOPInstanceUID string
	SHA256         string
	Size           int64
}

// errExportRequest marks a request the caller must change (relative path,
// incomplete study).
type exportError struct{ msg string }

func (e *exportError) Error() string { return e.msg }

// Export writes every instance of a study held here to
// OUT/<Series UID>/<SOP Instance UID>.dcm (files 0640, folders 0750: these
// are patient data), each decrypted, verified against its SHA-256, written
// and synced, then read back and verified again. A partly fetched study is
// refused unless AllowPartial. What was really written is audited, also
// when the export fails half-way (the reason is the failure's kind, never
// a path, which could name a patient).
func (a *archive) Export(ctx context.Context, req ExportRequest) ([]ExportedFile, error) {
	if !filepath.IsAbs(req.Out) {
		return nil, &exportError{"export: the output folder must be an absolute path"}
	}
	sr, ok, err := a.store.Study(req.Study)
	if err != nil {
		return nil, err
	}
	if !ok || sr.Instances == 0 {
		return nil, errStudyNotFound
	}
	if !sr.Complete() && !req.AllowPartial {
		return nil, fmt.Errorf("%w: %d of %d instances are held; fetch it again to complete it, or export the part with --allow-partial", errIncomplete, sr.Instances, sr.Expected)
	}
	insts, err := a.store.Instances(req.Study)
	if err != nil {
		return nil, err
	}
	var files []ExportedFile
	err = func() error {
		for _, in := range insts {
			if err := ctx.Err(); err != nil {
				return err
			}
			data, err := a.read(in)
			if err != nil {
				return fmt.Errorf("export %s: %w", in.SOPInstanceUID, err)
			}
			path := filepath.Join(req.Out, filepath.FromSlash(api.ExportPath(in.Series, in.SOPInstanceUID)))
			if err := writeSynced(path, data); err != nil {
				return fmt.Errorf("export: write: %w", err)
			}
			sum, err := fileSHA256(path)
			if err != nil {
				return fmt.Errorf("export: read back: %w", err)
			}
			if sum != in.Digest {
				return fmt.Errorf("export %s: the written file's SHA-256 differs from the archive's", path)
			}
			files = append(files, ExportedFile{Path: path, SOPInstanceUID: in.SOPInstanceUID, SHA256: sum, Size: int64(len(data))})
		}
		return nil
	}()
	e := consent.Entry{Actor: req.Actor, Action: consent.ActExport, Study: req.Study, Decision: consent.DecisionAllow,
		Reason: strconv.Itoa(len(files)) + " instances written"}
	if err != nil {
		e.Reason += "; failed: write error"
	}
	a.audit.Record(e)
	return files, err
}

func writeSynced(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
