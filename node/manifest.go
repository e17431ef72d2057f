package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
)

// ManifestFormat is the version of the manifest payload this build writes
// and reads.
const ManifestFormat = 1

// Manifest kinds.
const (
	KindStudy      = "study"      // a granted study: metadata, blocks and the study key
	KindRevocation = "revocation" // the grant named is revoked: forget the key
)

// Manifest is the payload of a sealed manifest: signed by the issuing
// facility inside, age-encrypted to the grantee outside (crypto.Seal).
type Manifest struct {
	Format     int                       `json:"format"`
	Kind       string                    `json:"kind"`
	Issuer     peer.ID                   `json:"issuer"`
	IssuerName string                    `json:"issuer_name"`
	Version    uint64                    `json:"version"` // increases with every manifest the issuer writes for the study
	Issued     time.Time                 `json:"issued"`
	Grant      *consent.SignedGrant      `json:"grant,omitempty"`
	Revocation *consent.SignedRevocation `json:"revocation,omitempty"`
	Study      StudyInfo                 `json:"study"`
	StudyKey   string                    `json:"study_key,omitempty"` // PACSNET-STUDY-KEY-1… (crypto.StudyKey): reading the blocks needs it
	Instances  []InstanceInfo            `json:"instances,omitempty"`
}

// sharedRecord is what a grantee keeps of the latest manifest it received
// for a study.
type sharedRecord struct {
	Manifest Manifest  `json:"manifest"`
	Key      []byte    `json:"key,omitempty"` // the manifest's study key, age-encrypted to this node
	State    string    `json:"state"`         // "available" or "revoked"
	Received time.Time `json:"received"`
}

func sharedKey(issuer peer.ID, study string) string {
	return pfxShared + issuer.String() + "/" + study
}

// GrantRequest is what an admin asks for with `pacsnet grant`.
type GrantRequest struct {
	To      string        `json:"to"`    // partner peer ID or name
	Study   string        `json:"study"` // Study Instance UID
	Expires time.Duration `json:"expires,omitempty"`
	Purpose string        `json:"purpose,omitempty"`
	User    string        `json:"user,omitempty"` // a named user at the grantee
	Actor   string        `json:"-"`
}

// Grant gives a partner access to a study held here: the grant is signed
// and committed with its audit entry, then a manifest carrying the study key
// is sealed to the partner and queued in the durable outbox.
func (n *Node) Grant(ctx context.Context, req GrantRequest) (*consent.SignedGrant, error) {
	p, err := n.resolvePeer(req.To)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", consent.ErrInvalidRequest, err)
	}
	sr, ok, err := n.study(req.Study)
	if err != nil {
		return nil, err
	}
	if !ok || sr.Instances == 0 {
		return nil, fmt.Errorf("%w: no study with that UID is held here", consent.ErrInvalidRequest)
	}
	if sr.Origin != "" {
		return nil, fmt.Errorf("%w: the study was received from %s; only the facility that holds the original may grant it", consent.ErrInvalidRequest, sr.OriginName)
	}
	ttl := req.Expires
	if ttl == 0 {
		ttl = n.cfg.Exchange.DefaultGrantTTL.Duration
	}
	if ttl > n.cfg.Exchange.MaxGrantTTL.Duration {
		return nil, fmt.Errorf("%w: a grant may last at most %s (config exchange.max_grant_ttl)", consent.ErrInvalidRequest, n.cfg.Exchange.MaxGrantTTL)
	}
	purpose := consent.Purpose(req.Purpose)
	switch purpose {
	case "":
		purpose = consent.PurposeTreatment
	case consent.PurposeResearch:
		// A research grant promises de-identified copies; until the PS3.15
		// Basic Profile is applied on the way out, refuse rather than
		// disclose identified data under that label.
		return nil, fmt.Errorf("%w: research-deidentified grants need de-identification (PS3.15 Basic Profile), which this build does not do yet", consent.ErrInvalidRequest)
	}
	now := n.now()
	g, err := n.ledger.Grant(consent.GrantRequest{
		Grantee:     p.ID,
		GranteeUser: req.User,
		Studies:     []string{req.Study},
		Purpose:     purpose,
		NotBefore:   now,
		Expires:     now.Add(ttl),
		Actor:       req.Actor,
	})
	if err != nil {
		return nil, err
	}
	if err := n.issueStudyManifest(p, sr, g); err != nil {
		return g, fmt.Errorf("grant %s stored, but its manifest was not queued: %w", g.Grant.ID, err)
	}
	return g, nil
}

// LiveGrants counts the live grants that give the partner named by to
// access to the study: an admin granting again, or revoking one of
// several, should know.
func (n *Node) LiveGrants(to, study string) int {
	p, err := n.resolvePeer(to)
	if err != nil {
		return 0
	}
	return len(n.liveGrants(p.ID, study))
}

// liveGrants returns the grants that let peer p fetch study now, oldest
// first.
func (n *Node) liveGrants(p peer.ID, study string) []consent.SignedGrant {
	var out []consent.SignedGrant
	for _, st := range n.ledger.GrantsFor(p) {
		if slices.Contains(st.Grant.Studies, study) && n.ledger.Check(p, st.Grant.ID, study, consent.ActionFetch) == nil {
			out = append(out, st.SignedGrant)
		}
	}
	return out
}

// Revoke revokes a grant; a revocation manifest is queued to the grantee.
// From the moment Revoke returns, the grantee's block requests are refused.
func (n *Node) Revoke(id, reason, actor string) (*consent.SignedRevocation, error) {
	rv, err := n.ledger.Revoke(id, reason, actor)
	if err != nil {
		return nil, err
	}
	st, ok := n.ledger.Get(id)
	if !ok {
		return rv, nil
	}
	p, ok := n.partners.get(st.Grant.Grantee)
	if !ok {
		return rv, nil
	}
	for _, study := range st.Grant.Studies {
		sr, ok, err := n.study(study)
		if err != nil || !ok {
			continue
		}
		m := Manifest{Kind: KindRevocation, Grant: &st.SignedGrant, Revocation: rv, Study: sr.StudyInfo}
		if err := n.sealAndQueue(p, m); err != nil {
			return rv, fmt.Errorf("revocation stored, but its manifest was not queued: %w", err)
		}
		// Another live grant still covers the study (the revoked one no
		// longer counts): the grantee keeps it.
		if others := n.liveGrants(p.ID, study); len(others) > 0 {
			if err := n.issueStudyManifest(p, sr, &others[0]); err != nil {
				return rv, fmt.Errorf("revocation stored, but the manifest of the remaining grant was not queued: %w", err)
			}
		}
	}
	return rv, nil
}

func (n *Node) issueStudyManifest(p Peer, sr studyRecord, g *consent.SignedGrant) error {
	sk, err := n.studyKey(sr.StudyInfo, "", "", false)
	if err != nil {
		return err
	}
	insts, err := n.instances(sr.UID)
	if err != nil {
		return err
	}
	m := Manifest{Kind: KindStudy, Grant: g, Study: sr.StudyInfo, StudyKey: sk.String(), Instances: insts}
	return n.sealAndQueue(p, m)
}

// sealAndQueue seals a manifest for p and queues it in the outbox, in one
// transaction.
func (n *Node) sealAndQueue(p Peer, m Manifest) error {
	defer n.outbox.kick()
	return n.arch.update(func(txn *badger.Txn) error {
		sealed, err := n.sealManifest(txn, p, &m)
		if err != nil {
			return err
		}
		var grantID string
		if m.Grant != nil {
			grantID = m.Grant.Grant.ID
		}
		return n.outbox.enqueueTxn(txn, outboxItem{
			Peer: p.ID, Kind: m.Kind, Study: m.Study.UID, GrantID: grantID,
			Version: m.Version, Sealed: sealed, Created: m.Issued,
		})
	})
}

// sealManifest stamps m (format, issuer, time, next version of the study's
// manifest counter, inside txn), signs it and encrypts it to p.
func (n *Node) sealManifest(txn *badger.Txn, p Peer, m *Manifest) ([]byte, error) {
	rcp, err := age.ParseHybridRecipient(p.Recipient)
	if err != nil {
		return nil, fmt.Errorf("partner recipient: %w", err)
	}
	m.Format = ManifestFormat
	m.Issuer = n.host.ID()
	m.IssuerName = n.cfg.Name
	m.Issued = n.now().UTC()
	if m.Version, err = nextSeq(txn, keyMSeq+m.Study.UID); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sealed, err := crypto.Seal(n.keys.id.Sign, sigDomainManifest, payload, rcp)
	if err != nil {
		return nil, fmt.Errorf("seal manifest: %w", err)
	}
	return sealed, nil
}

// nextSeq increments the counter at key inside txn and returns the new value.
func nextSeq(txn *badger.Txn, key string) (uint64, error) {
	var v uint64
	it, err := txn.Get([]byte(key))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return 0, err
	default:
		if err := it.Value(func(b []byte) error {
			if len(b) != 8 {
				return errors.New("corrupt counter")
			}
			v = binary.BigEndian.Uint64(b)
			return nil
		}); err != nil {
			return 0, err
		}
	}
	v++
	return v, txn.Set([]byte(key), binary.BigEndian.AppendUint64(nil, v))
}

// HandleManifest implements exchange.ManifestHandler: a partner pushed a
// sealed manifest. It is opened with our age identity, its signature must
// be by the pushing partner, its grant must be signed by that partner and
// name us. Anything else is rejected (exchange.ErrRejected) and logged
// without patient data.
func (n *Node) HandleManifest(ctx context.Context, from peer.ID, sealed []byte) error {
	err := n.receiveManifest(from, sealed)
	if err != nil {
		// Only the reason code: the error may quote bytes the peer sent.
		n.log.Warn("manifest rejected", "peer", from, "reason", reasonOf(err))
		n.audit(consent.Entry{Actor: "system", Peer: from, Action: consent.ActManifestRejected, Decision: "deny", Reason: reasonOf(err)})
		return fmt.Errorf("%w: %v", exchange.ErrRejected, err)
	}
	return nil
}

func (n *Node) receiveManifest(from peer.ID, sealed []byte) error {
	if !n.partners.IsPartner(from) {
		return errors.New("not-partner: sender is not a partner facility")
	}
	payload, signer, err := crypto.Open(sealed, n.keys.id.Box, sigDomainManifest, exchange.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if signer != from {
		return errors.New("wrong-signer: manifest is signed by another facility than the sender")
	}
	var m Manifest
	if err := json.Unmarshal(payload, &m); err != nil {
		return errors.New("malformed: manifest payload does not decode")
	}
	if m.Format != ManifestFormat {
		return fmt.Errorf("format: manifest format %d is not supported", m.Format)
	}
	if m.Issuer != signer {
		return errors.New("wrong-issuer: issuer field differs from signer")
	}
	if m.Grant == nil {
		return errors.New("malformed: manifest carries no grant")
	}
	if err := m.Grant.Verify(); err != nil {
		return errors.New("bad-grant: grant signature does not verify")
	}
	g := m.Grant.Grant
	if g.Issuer != signer || g.Grantee != n.host.ID() {
		return errors.New("bad-grant: grant is not from the sender to us")
	}
	if !slices.Contains(g.Studies, m.Study.UID) {
		return errors.New("bad-grant: grant does not cover the manifest's study")
	}
	switch m.Kind {
	case KindStudy:
		if _, err := crypto.ParseStudyKey(m.StudyKey); err != nil {
			return errors.New("malformed: study key does not parse")
		}
		if len(m.Instances) == 0 {
			return errors.New("malformed: study manifest lists no instances")
		}
		for _, in := range m.Instances {
			if in.Study != m.Study.UID || len(in.Blocks) == 0 || len(in.Digest) != 64 {
				return errors.New("malformed: instance entry is inconsistent")
			}
		}
	case KindRevocation:
		if m.Revocation == nil || m.Revocation.Verify() != nil || m.Revocation.Revocation.GrantID != g.ID || m.Revocation.Revocation.Issuer != signer {
			return errors.New("bad-revocation: revocation is missing or does not verify")
		}
	default:
		return fmt.Errorf("malformed: unknown manifest kind %q", m.Kind)
	}
	key := sharedKey(from, m.Study.UID)
	stale := false
	err = n.arch.update(func(txn *badger.Txn) error {
		var prev sharedRecord
		ok, err := getJSON(txn, key, &prev)
		if err != nil {
			return err
		}
		if ok && prev.Manifest.Version >= m.Version {
			stale = true // a retry of a delivered manifest, or an old one: keep the newer
			return nil
		}
		rec := sharedRecord{Manifest: m, State: "available", Received: n.now().UTC()}
		if m.StudyKey != "" {
			w, err := crypto.Encrypt([]byte(m.StudyKey), n.keys.id.Recipient())
			if err != nil {
				return err
			}
			rec.Key, rec.Manifest.StudyKey = w, ""
		}
		if m.Kind == KindRevocation {
			rec.State = "revoked"
			if ok {
				rec.Manifest.Instances = prev.Manifest.Instances
			}
			rec.Manifest.StudyKey = "" // forget the key of a revoked grant
		}
		return setJSON(txn, key, rec)
	})
	if err != nil {
		return fmt.Errorf("store-failed: %w", err)
	}
	if !stale {
		n.audit(consent.Entry{Actor: "system", Peer: from, Action: consent.ActManifestReceived, Study: m.Study.UID, GrantID: g.ID, Reason: m.Kind})
	}
	return nil
}

// reasonOf turns an internal error into a short audit reason: the part
// before the first colon, which the code above keeps free of patient data.
func reasonOf(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, ':'); i > 0 {
		return s[:i]
	}
	return s
}

// SharedStudy is one study a partner shared with us (from its manifest).
type SharedStudy struct {
	Issuer     peer.ID   `json:"issuer"`
	IssuerName string    `json:"issuer_name"`
	Study      StudyInfo `json:"study"`
	State      string    `json:"state"`
	GrantID    string    `json:"grant"`
	Expires    time.Time `json:"expires"`
	Version    uint64    `json:"version"`
	Instances  int       `json:"instances"`
	Bytes      int64     `json:"bytes"`
	Received   time.Time `json:"received"`
	Fetched    bool      `json:"fetched"` // every instance is in the local archive
}

// Shared lists the studies partners shared with this facility.
func (n *Node) Shared() ([]SharedStudy, error) {
	var out []SharedStudy
	err := scanJSON(n.arch, pfxShared, func(_ []byte, r *sharedRecord) error {
		s := SharedStudy{
			Issuer: r.Manifest.Issuer, IssuerName: r.Manifest.IssuerName, Study: r.Manifest.Study,
			State: r.State, Version: r.Manifest.Version, Instances: len(r.Manifest.Instances), Received: r.Received,
		}
		if r.Manifest.Grant != nil {
			s.GrantID = r.Manifest.Grant.Grant.ID
			s.Expires = r.Manifest.Grant.Grant.Expires
			if s.State == "available" && !n.now().Before(s.Expires) {
				s.State = "expired"
			}
		}
		for _, in := range r.Manifest.Instances {
			s.Bytes += in.Size
		}
		if sr, ok, err := n.study(s.Study.UID); err == nil && ok && sr.Instances >= s.Instances {
			s.Fetched = true
		}
		out = append(out, s)
		return nil
	})
	return out, err
}
