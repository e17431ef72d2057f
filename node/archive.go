package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	Readers    []string // a partner's copy only these users may read (see reader.mayRead); empty: anyone allowed
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
				Instances: r.Instances, Expected: r.Expected, Complete: r.Complete(), Bytes: r.Bytes, Updated: r.Updated,
				Readers: r.Readers})
		}
	}
	return out, err
}

// gate answers errStudyNotFound for a study rd may not read (a partner's
// copy another user's grant brought here): to rd it does not exist.
func (a *archive) gate(study string, rd reader) error {
	sr, ok, err := a.store.Study(study)
	switch {
	case err != nil:
		return err
	case !ok || !rd.mayRead(sr.Readers):
		return errStudyNotFound
	}
	return nil
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
	var size int
	cids := make([]cid.Cid, len(rec.Blocks))
	for i, br := range rec.Blocks {
		size += br.Size
		c, err := cid.Decode(br.CID)
		if err != nil {
			return nil, fmt.Errorf("read instance: %w", err)
		}
		cids[i] = c
	}
	ct, err := a.store.AppendBlocks(make([]byte, 0, size), cids)
	if err != nil {
		return nil, fmt.Errorf("read instance: %w", err)
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
	Merge        bool // add to a non-empty folder: identical files are kept, different ones refused
	Actor        string
}

// ExportedFile is one file an export wrote (or, merging, found identical).
type ExportedFile struct {
	Path           string
	SOPInstanceUID string
	SHA256         string
	Size           int64
	Skipped        bool // merging: the file was there already, identical
}

// ExportResult is what an export wrote.
type ExportResult struct {
	Files  []ExportedFile
	Marker string // the INCOMPLETE file left in the folder: the study is held only in part
}

// Export writes every instance of a study held here to
// OUT/<Series UID>/<SOP Instance UID>.dcm (files 0640, folders 0750: these
// are patient data), each decrypted, verified against its SHA-256, written
// and synced, then read back and verified again.
//
// Files are created new, never through a symbolic link, in folders of the
// node's user that are not links (exportDir); an existing non-empty OUT is
// refused unless Merge. An INCOMPLETE file is written into OUT first and
// removed only once the whole study is written and synced, so a failed,
// cancelled or partial export (AllowPartial, for a partly fetched study)
// is marked as such on disk.
//
// The export is audited before anything is written (if the entry cannot
// be written, neither is the export), and what was really written after,
// also when the export fails half-way (the reason is the failure's kind,
// never a path, which could name a patient).
func (a *archive) Export(ctx context.Context, req ExportRequest) (ExportResult, error) {
	var res ExportResult
	if !filepath.IsAbs(req.Out) {
		return res, &exportError{msg: "export: the output folder must be an absolute path"}
	}
	out := filepath.Clean(req.Out)
	sr, ok, err := a.store.Study(req.Study)
	if err != nil {
		return res, err
	}
	if !ok || sr.Instances == 0 {
		return res, errStudyNotFound
	}
	if !sr.Complete() && !req.AllowPartial {
		return res, fmt.Errorf("%w: %d of %d instances are held; fetch it again to complete it, or export the part with --allow-partial", errIncomplete, sr.Instances, sr.Expected)
	}
	insts, err := a.store.Instances(req.Study)
	if err != nil {
		return res, err
	}
	total := max(sr.Expected, len(insts))
	// Fail closed: an export the audit trail cannot record is not written.
	if err := a.audit.Record(consent.Entry{Actor: req.Actor, Action: consent.ActExport, Study: req.Study, Decision: consent.DecisionAllow,
		Reason: "exporting " + strconv.Itoa(len(insts)) + " instances"}); err != nil {
		return res, err
	}
	root, err := openExportRoot(out, req.Merge)
	if err != nil {
		return res, err
	}
	defer root.close()
	mk, err := createMarker(root, markerText(req.Study, 0, total, "the export started and has not finished (or was interrupted)"))
	if err != nil {
		return res, err
	}
	written := 0
	err = func() error {
		dirs := map[string]*exportDir{}
		defer func() {
			for _, d := range dirs {
				d.close()
			}
		}()
		for _, in := range insts {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			data, err := a.read(in)
			if err != nil {
				return fmt.Errorf("export %s: %w", in.SOPInstanceUID, err)
			}
			series, name, _ := strings.Cut(api.ExportPath(in.Series, in.SOPInstanceUID), "/")
			d, ok := dirs[series]
			if !ok {
				if d, err = root.sub(series); err != nil {
					return err
				}
				dirs[series] = d
			}
			skipped, err := d.writeFile(name, data, in.Digest, req.Merge)
			if err != nil {
				return err
			}
			written++
			res.Files = append(res.Files, ExportedFile{Path: filepath.Join(d.path, name), SOPInstanceUID: in.SOPInstanceUID,
				SHA256: in.Digest, Size: int64(len(data)), Skipped: skipped})
		}
		for _, d := range dirs {
			if err := d.sync(); err != nil {
				return err
			}
		}
		return root.sync()
	}()
	switch {
	case err != nil:
		why := "the export failed: " + err.Error()
		if ctx.Err() != nil {
			why = "the export was cancelled"
		}
		if merr := mk.keep(markerText(req.Study, written, total, why)); merr != nil {
			err = errors.Join(err, merr)
		} else {
			err = fmt.Errorf("%w (%d of %d instances written; %s marks the folder as incomplete)", err, written, total, filepath.Join(out, exportMarker))
		}
	case written < total:
		err = mk.keep(markerText(req.Study, written, total, fmt.Sprintf("only %d of the study's %d instances are held here (a partly fetched study, exported with --allow-partial)", written, total)))
		res.Marker = filepath.Join(out, exportMarker)
	default:
		err = mk.remove()
	}
	e := consent.Entry{Actor: req.Actor, Action: consent.ActExport, Study: req.Study, Decision: consent.DecisionAllow,
		Reason: strconv.Itoa(written) + " instances written"}
	if err != nil {
		e.Reason += "; failed: write error"
	}
	a.audit.Record(e)
	return res, err
}

// sortInstances puts a study's instances in display order: by series
// number, series, instance number, then SOP Instance UID (DICOMweb
// retrieval and the download's file-set).
func sortInstances(list []InstanceInfo) {
	slices.SortFunc(list, func(a, b InstanceInfo) int {
		if c := a.SeriesNumber - b.SeriesNumber; c != 0 {
			return c
		}
		if c := strings.Compare(a.Series, b.Series); c != 0 {
			return c
		}
		if c := a.InstanceNumber - b.InstanceNumber; c != 0 {
			return c
		}
		return strings.Compare(a.SOPInstanceUID, b.SOPInstanceUID)
	})
}
