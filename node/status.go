package node

import (
	"fmt"
	"path/filepath"
	"runtime/debug"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
)

// Thresholds of Status.Health: below either free-space mark, or after so
// many failed deliveries of one manifest, the node is degraded.
const (
	lowDiskFraction     = 0.05
	lowDiskBytes        = 1 << 30
	undeliveredAttempts = 3
)

// statusReport is GET /api/v1/status: what the node is, where it
// listens, and what needs an admin: disk, partners' reachability, the
// outbox per partner, fetches in progress.
func (s *apiServer) statusReport() (api.Status, error) {
	n := s.n
	items, err := n.outbox.Pending()
	if err != nil {
		return api.Status{}, err
	}
	ps := n.partners.List()
	st := api.Status{Name: n.cfg.Name, AETitle: n.cfg.AETitle, PeerID: n.host.ID().String(), P2P: n.P2PAddrs(),
		HTTP: n.HTTPAddr(), DICOM: n.DICOMAddr(), Partners: len(ps), Outbox: len(items), Health: api.HealthOK,
		ArchiveBytes: n.store.Size(), PartnerStates: []api.PartnerStatus{}, Fetches: []api.FetchJob{}, Version: buildVersion()}
	if n.dicom != nil {
		st.DICOMAssociations = n.dicom.associations()
	}
	if free, total, err := diskSpace(filepath.Join(n.home, archiveDir)); err != nil {
		st.Problems = append(st.Problems, "the archive's free disk space cannot be read: "+err.Error())
	} else {
		st.DiskFree, st.DiskTotal = free, total
		if free < lowDiskBytes || float64(free) < lowDiskFraction*float64(total) {
			st.Problems = append(st.Problems, fmt.Sprintf("the archive's disk is almost full: %.1f GB free of %.1f GB", float64(free)/1e9, float64(total)/1e9))
		}
	}
	waiting := map[peer.ID]*api.PartnerStatus{}
	for _, p := range ps {
		online, last := n.partners.Seen(p.ID)
		if online {
			st.PartnersOnline++
		}
		st.PartnerStates = append(st.PartnerStates, api.PartnerStatus{PartnerRef: api.PartnerRef{PeerID: p.ID.String(), Name: p.Name},
			Online: online, LastSeen: last})
		waiting[p.ID] = &st.PartnerStates[len(st.PartnerStates)-1]
	}
	stuck := 0
	for _, it := range items {
		if w, ok := waiting[it.Peer]; ok {
			w.Outbox++
			if it.LastErr != "" {
				w.LastError = it.LastErr
			}
		}
		if it.Attempts >= undeliveredAttempts {
			stuck++
		}
	}
	if stuck > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("%d manifest(s) failed delivery %d times or more: see the partners' last errors and `pacsnet peers`", stuck, undeliveredAttempts))
	}
	if st.AuditShipping = n.shippingStatus(); st.AuditShipping != nil && st.AuditShipping.LastError != "" && st.AuditShipping.Backlog > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("the audit stream to %s is %d entries behind: %s (kept; sent once it is back)",
			st.AuditShipping.Addr, st.AuditShipping.Backlog, st.AuditShipping.LastError))
	}
	if reqs, err := n.requests.book.Requests(); err == nil {
		for _, r := range reqs {
			switch {
			case r.Status.State == consent.RequestPending:
				st.RequestsPending++
			case r.Status.Emergency && r.DecidedBy == consent.ActorSystem && r.Review == "":
				st.EmergencyToReview++
			}
		}
	}
	if err := s.forwardStatus(&st); err != nil {
		return api.Status{}, err
	}
	for _, f := range n.fetcher.Active() {
		st.Fetches = append(st.Fetches, s.names().fetch(f))
	}
	if len(st.Problems) > 0 {
		st.Health = api.HealthDegraded
	}
	return st, nil
}

// forwardStatus adds the forward queue (dicom.forward_to) to st.
func (s *apiServer) forwardStatus(st *api.Status) error {
	items, err := s.n.forward.Pending()
	if err != nil {
		return err
	}
	st.ForwardTo, st.ForwardsPending = s.n.cfg.DICOM.ForwardTo, len(items)
	stuck := 0
	for _, it := range items {
		if it.LastErr != "" && st.ForwardLastError == "" {
			st.ForwardLastError = it.LastErr // the first waiting item holds the others up
		}
		if it.Attempts >= undeliveredAttempts {
			stuck++
		}
	}
	if stuck > 0 {
		st.Problems = append(st.Problems, fmt.Sprintf("%d fetched stud(ies) failed forwarding to %s %d times or more: see the forwards line and its last error", stuck, st.ForwardTo, undeliveredAttempts))
	}
	return nil
}

// buildVersion is the node binary's module version, or (devel).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
