package wire

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// ManifestFormat is the version of the manifest payload this build writes
// and reads.
const ManifestFormat = 1

// Manifest kinds.
const (
	KindStudy      = "study"      // a granted study: metadata, blocks and the study key
	KindRevocation = "revocation" // the grant named is revoked: forget the key

	// KindHolder goes from a grantee back to the grant's issuer: the
	// grantee holds the study (fetched under that grant, which names no
	// user) and serves it as a secondary holder to the issuer's other
	// grantees. It carries the grant and the study's identity only.
	KindHolder = "holder"
	// KindHolderWithdrawn goes the same way as KindHolder and undoes it:
	// the grantee no longer serves the study as a secondary holder.
	KindHolderWithdrawn = "holder-withdrawn"
	// KindHolderRevocation goes from a grant's issuer to a secondary
	// holder of a study the grant covers: the grant, given to a third
	// facility, is revoked, so the holder must stop serving under it.
	KindHolderRevocation = "holder-revocation"
)

// Manifest is the payload of a sealed manifest: signed by the issuing
// facility inside, age-encrypted to the grantee outside (crypto.Seal,
// domain [crypto.DomainManifest]).
type Manifest struct {
	Format     int                       `json:"format"`
	Kind       string                    `json:"kind"`
	Issuer     peer.ID                   `json:"issuer"`
	IssuerName string                    `json:"issuer_name"`
	Version    uint64                    `json:"version"` // increases with every manifest the issuer writes for the study
	Issued     time.Time                 `json:"issued"`
	Grant      *consent.SignedGrant      `json:"grant,omitempty"`
	Revocation *consent.SignedRevocation `json:"revocation,omitempty"`
	Study      Study                     `json:"study"`
	StudyKey   string                    `json:"study_key,omitempty"` // PACSNET-STUDY-KEY-1… (crypto.StudyKey): reading the blocks needs it
	Instances  []Instance                `json:"instances,omitempty"`
}

// ParseManifest decodes a manifest payload (what crypto.Open returned)
// and checks everything that needs no context. A manifest it returns has:
//
//   - Format == [ManifestFormat];
//   - a Grant whose signature verifies (consent.SignedGrant.Verify), issued
//     by Issuer and covering the study: naming Study.UID, or, for a
//     patient grant, naming the study's Patient ID and Issuer of Patient
//     ID exactly;
//   - for [KindStudy]: a StudyKey that crypto.ParseStudyKey accepts, and at
//     least one instance, each of Study.UID, with series, SOP instance, SOP
//     class and transfer syntax UIDs that internal/uid accepts, a non-negative Size, a
//     Digest of 64 lowercase hex digits and at least one block, each block
//     a CIDv1 (raw codec, SHA2-256, 32-byte digest) with 0 < Size ≤
//     [BlockSize];
//   - for [KindRevocation] and [KindHolderRevocation]: a Revocation that
//     verifies, names the Grant and is signed by the Grant's issuer;
//   - for [KindHolder] and [KindHolderWithdrawn]: Issuer is the Grant's
//     grantee (everywhere else its issuer), the Grant names no user, and
//     there is no study key, instance or revocation.
//
// Any other kind is refused. The errors are [*Error] values; their
// messages never quote the payload. Whether the manifest comes from the
// right facility to the right one is [Manifest.CheckParties]'s business.
func ParseManifest(payload []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, reject(ReasonMalformed, "manifest payload does not decode")
	}
	if m.Format != ManifestFormat {
		// A number cannot carry anything worth hiding; it tells an admin
		// which side needs upgrading.
		return nil, &Error{Reason: ReasonFormat, Msg: "manifest format " + strconv.Itoa(m.Format) + " is not supported"}
	}
	if m.Grant == nil {
		return nil, reject(ReasonMalformed, "manifest carries no grant")
	}
	if err := m.Grant.Verify(); err != nil {
		return nil, reject(ReasonBadGrant, "grant signature does not verify")
	}
	g := &m.Grant.Grant
	// A holder notice is the grantee's; every other kind the grant's
	// issuer's.
	if fromGrantee := m.Kind == KindHolder || m.Kind == KindHolderWithdrawn; fromGrantee && m.Issuer != g.Grantee || !fromGrantee && m.Issuer != g.Issuer {
		return nil, reject(ReasonWrongIssuer, "issuer field differs from the grant's issuer")
	}
	if !g.Covers(m.Study.UID, m.Study.PatientID, m.Study.IssuerOfPatientID) {
		return nil, reject(ReasonBadGrant, "grant does not cover the manifest's study")
	}
	switch m.Kind {
	case KindStudy:
		if err := checkStudy(&m); err != nil {
			return nil, err
		}
	case KindRevocation, KindHolderRevocation:
		rv := m.Revocation
		if rv == nil || rv.Verify() != nil || rv.Revocation.GrantID != g.ID || rv.Revocation.Issuer != g.Issuer {
			return nil, reject(ReasonBadRevocation, "revocation is missing or does not verify")
		}
	case KindHolder, KindHolderWithdrawn:
		if g.GranteeUser != "" || m.StudyKey != "" || len(m.Instances) > 0 || m.Revocation != nil {
			return nil, reject(ReasonMalformed, "holder notice under a user's grant, or with a key, instances or a revocation")
		}
	default:
		return nil, reject(ReasonMalformed, "unknown manifest kind")
	}
	return &m, nil
}

func checkStudy(m *Manifest) error {
	if _, err := crypto.ParseStudyKey(m.StudyKey); err != nil {
		return reject(ReasonMalformed, "study key does not parse")
	}
	if len(m.Instances) == 0 {
		return reject(ReasonMalformed, "study manifest lists no instances")
	}
	for i := range m.Instances {
		in := &m.Instances[i]
		if in.Study != m.Study.UID || len(in.Blocks) == 0 || !isDigest(in.Digest) || in.Size < 0 {
			return reject(ReasonMalformed, "instance entry is inconsistent")
		}
		// The one UID rule (internal/uid): a partner's instance becomes a
		// key, a file name and a URL path here, exactly like our own.
		for _, u := range [...]string{in.Series, in.SOPInstanceUID, in.SOPClassUID, in.TransferSyntaxUID} {
			if !uid.Valid(u) {
				return reject(ReasonMalformed, "instance entry has a malformed UID")
			}
		}
		for _, b := range in.Blocks {
			if b.Size <= 0 || b.Size > BlockSize || !validBlockCID(b.CID) {
				return reject(ReasonMalformed, "instance names a malformed block")
			}
		}
	}
	return nil
}

// validBlockCID accepts what the archive writes: CIDv1, raw codec,
// SHA2-256 with a full 32-byte digest. Anything else could never match a
// block we would accept on arrival.
func validBlockCID(s string) bool {
	c, err := cid.Decode(s)
	if err != nil {
		return false
	}
	pf := c.Prefix()
	return pf.Version == 1 && pf.Codec == cid.Raw && pf.MhType == multihash.SHA2_256 && pf.MhLength == 32
}

// isDigest accepts 64 lowercase hex digits: hex.EncodeToString of a
// SHA-256, which is what a fetched instance is compared against.
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckParties checks what [ParseManifest] cannot know: that the manifest
// was issued by signer, the facility whose signature the envelope carries
// (which the caller has checked is the facility that sent it), and that
// its grant is from signer to self.
func (m *Manifest) CheckParties(signer, self peer.ID) error {
	if m.Issuer != signer {
		return reject(ReasonWrongIssuer, "issuer field differs from signer")
	}
	if m.Grant == nil {
		return reject(ReasonMalformed, "manifest carries no grant")
	}
	g := m.Grant.Grant
	switch m.Kind {
	case KindHolder, KindHolderWithdrawn:
		// The grantee tells us, the grant's issuer, that it holds the study.
		if g.Grantee != signer || g.Issuer != self {
			return reject(ReasonBadGrant, "grant is not from us to the sender")
		}
		return nil
	case KindHolderRevocation:
		// The issuer tells a secondary holder that another facility's
		// grant is revoked; our own grants' revocations are KindRevocation.
		if g.Issuer != signer || g.Grantee == self {
			return reject(ReasonBadGrant, "grant is not the sender's to a third facility")
		}
		return nil
	}
	if g.Issuer != signer || g.Grantee != self {
		return reject(ReasonBadGrant, "grant is not from the sender to us")
	}
	return nil
}
