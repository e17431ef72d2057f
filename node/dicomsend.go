package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/node/clock"
)

// sendTally counts C-STORE sub-operations (PS3.4 C.4.2.1.5).
type sendTally struct {
	Remaining, Completed, Warning, Failed int
	FailedUIDs                            []string
	// NoContext counts instances failed because the peer accepted no
	// presentation context for their SOP class in their stored transfer
	// syntax (pacsnet does not transcode).
	NoContext int
}

// errNoSyntax is a send where the destination accepted no presentation
// context for any instance to send: nothing could be sent without
// transcoding, which pacsnet does not do.
var errNoSyntax = errors.New("the destination accepts none of the SOP class and transfer syntax pairs held for these instances (pacsnet does not transcode)")

// sender sends stored instances with C-STORE: to a known AE over a new
// association (C-MOVE, `pacsnet send`), or on an association the peer
// opened (C-GET). Each instance's data set goes in its stored transfer
// syntax, as it was received.
type sender struct {
	aet     string // our AE title, the calling AE of associations we open
	archive *archive
	limits  dimse.Limits
	log     *slog.Logger
	// dial connects to an AE: plain TCP, or DICOM TLS for AEs marked tls
	// (dicomEdge.dialer); nil dials plain TCP.
	dial func(ae AE) (func(ctx context.Context, network, addr string) (net.Conn, error), error)
}

// storeContexts proposes one presentation context per SOP class and
// stored transfer syntax (at most 128: the IDs are odd bytes).
func storeContexts(insts []InstanceInfo) []dimse.ContextRQ {
	seen := map[[2]string]bool{}
	var out []dimse.ContextRQ
	for _, in := range insts {
		k := [2]string{in.SOPClassUID, in.TransferSyntaxUID}
		if seen[k] || len(out) == 128 {
			continue
		}
		seen[k] = true
		out = append(out, dimse.ContextRQ{AbstractSyntax: in.SOPClassUID, TransferSyntaxes: []string{in.TransferSyntaxUID}})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].AbstractSyntax < out[j].AbstractSyntax })
	return out
}

// Open opens an association to ae proposing what insts need.
func (s *sender) Open(ctx context.Context, ae AE, insts []InstanceInfo) (*dimse.Assoc, error) {
	r := &dimse.Requestor{CallingAE: s.aet, CalledAE: ae.Title, Limits: s.limits, Contexts: storeContexts(insts)}
	if s.dial != nil {
		d, err := s.dial(ae)
		if err != nil {
			return nil, fmt.Errorf("associate with %s: %w", ae.Title, err)
		}
		r.Dialer = d
	}
	a, err := r.Dial(ctx, net.JoinHostPort(ae.Host, strconv.Itoa(ae.Port)))
	if err != nil {
		return nil, fmt.Errorf("associate with %s: %w", ae.Title, err)
	}
	return a, nil
}

// SendTo sends insts to a known AE over a new association and releases
// it. progress is called after each sub-operation; returning false stops
// (a C-CANCEL). The error is nil when the association worked, whatever
// the sub-operations' outcome; errNoSyntax when no instance had a context.
func (s *sender) SendTo(ctx context.Context, ae AE, insts []InstanceInfo, origAE string, origID uint16, progress func(sendTally) bool) (sendTally, error) {
	a, err := s.Open(ctx, ae, insts)
	if err != nil {
		t := sendTally{Failed: len(insts)}
		for _, in := range insts {
			t.FailedUIDs = append(t.FailedUIDs, in.SOPInstanceUID)
		}
		return t, err
	}
	t, err := s.Deliver(ctx, a, false, insts, origAE, origID, progress)
	if err != nil {
		a.Abort()
		return t, err
	}
	if rerr := a.Release(); rerr != nil {
		s.log.Info("DICOM release after sending", "ae", ae.Title, "err", rerr)
	}
	if len(insts) > 0 && t.NoContext == len(insts) {
		return t, errNoSyntax
	}
	return t, nil
}

// Deliver sends insts on a, one C-STORE each, in their stored transfer
// syntax. needSCPRole: the peer must have the SCP role on the context
// (C-GET). An error means the association failed; the instances not sent
// are counted failed.
func (s *sender) Deliver(ctx context.Context, a *dimse.Assoc, needSCPRole bool, insts []InstanceInfo, origAE string, origID uint16,
	progress func(sendTally) bool) (sendTally, error) {
	t := sendTally{Remaining: len(insts)}
	peerAE := a.CalledAE
	if needSCPRole {
		peerAE = a.CallingAE
	}
	warned := map[[2]string]bool{} // one log line per SOP class and syntax refused
	failRest := func(from int) {
		for _, in := range insts[from:] {
			t.Failed++
			t.FailedUIDs = append(t.FailedUIDs, in.SOPInstanceUID)
		}
		t.Remaining = 0
	}
	for i, in := range insts {
		if err := ctx.Err(); err != nil {
			failRest(i)
			return t, err
		}
		t.Remaining--
		pc := a.ContextFor(in.SOPClassUID, in.TransferSyntaxUID)
		if pc == nil || (needSCPRole && !pc.RequestorSCP) {
			if k := [2]string{in.SOPClassUID, in.TransferSyntaxUID}; !warned[k] {
				warned[k] = true
				s.log.Warn("DICOM sub-operations failed: the peer accepted no presentation context for the SOP class in the transfer syntax the instances are stored in (no transcoding)",
					"peer_ae", printableAE(peerAE), "sop_class", in.SOPClassUID, "transfer_syntax", in.TransferSyntaxUID)
			}
			t.Failed++
			t.NoContext++
			t.FailedUIDs = append(t.FailedUIDs, in.SOPInstanceUID)
		} else {
			data, _, err := s.archive.InstanceData(in.Study, in.SOPInstanceUID)
			var ds []byte
			if err == nil {
				ds, err = dicomio.DataSetOf(data)
			}
			if err != nil {
				s.log.Warn("DICOM sub-operation failed: instance unreadable", "study", in.Study, "err", err)
				t.Failed++
				t.FailedUIDs = append(t.FailedUIDs, in.SOPInstanceUID)
			} else {
				res, err := dimse.Store(ctx, a, pc, uint16(i+1), in.SOPClassUID, in.SOPInstanceUID, bytes.NewReader(ds), origAE, origID)
				if err != nil {
					failRest(i)
					return t, fmt.Errorf("C-STORE sub-operation: %w", err)
				}
				switch {
				case res.Status == dimse.StatusSuccess:
					t.Completed++
				case res.OK():
					t.Warning++
				default:
					s.log.Warn("DICOM sub-operation refused by the peer", "status", fmt.Sprintf("0x%04X", res.Status), "comment", clip(res.Comment, 64))
					t.Failed++
					t.FailedUIDs = append(t.FailedUIDs, in.SOPInstanceUID)
				}
			}
		}
		if progress != nil && !progress(t) {
			return t, nil
		}
	}
	return t, nil
}

// SendStatus is the progress of one `pacsnet send`.
type SendStatus struct {
	ID        string
	Study     string
	To        string
	State     string
	Instances int
	Completed int
	Warning   int
	Failed    int
	Started   time.Time
	Finished  time.Time
	Error     string
}

// sends runs `pacsnet send` jobs: a study held here to a known AE. It
// owns their goroutines, which stop with ctx; wait waits for them.
type sends struct {
	sender *sender
	aes    *aeRegistry
	audit  *auditor
	clock  clock.Clock
	ctx    context.Context

	mu   sync.Mutex
	jobs map[string]*SendStatus
	wg   sync.WaitGroup
}

// maxSendJobs bounds the jobs kept for status queries (the oldest
// finished ones are forgotten first).
const maxSendJobs = 64

// Start starts sending study to the AE titled to and returns at once.
func (s *sends) Start(study, to string, rd reader) (SendStatus, error) {
	actor := rd.id
	ae, ok := s.aes.Get(to)
	if !ok {
		return SendStatus{}, fmt.Errorf("%w: no AE is called %q; add it with pacsnet ae add", errAENotFound, to)
	}
	if err := s.sender.archive.gate(study, rd); err != nil {
		return SendStatus{}, err
	}
	insts, err := s.sender.archive.Instances(study)
	if err != nil {
		return SendStatus{}, err
	}
	if len(insts) == 0 {
		return SendStatus{}, errStudyNotFound
	}
	// Fail closed: a send the audit trail cannot record does not start.
	if err := s.audit.Record(consent.Entry{Actor: actor, Action: actDICOMSend, Study: study, Decision: consent.DecisionAllow, Reason: "to:" + ae.Title}); err != nil {
		return SendStatus{}, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	j := &SendStatus{ID: hex.EncodeToString(id), Study: study, To: ae.Title, State: api.SendRunning,
		Instances: len(insts), Started: s.clock.Now().UTC()}
	s.mu.Lock()
	if len(s.jobs) >= maxSendJobs {
		var oldest *SendStatus
		for _, o := range s.jobs {
			if o.State != api.SendRunning && (oldest == nil || o.Finished.Before(oldest.Finished)) {
				oldest = o
			}
		}
		if oldest != nil {
			delete(s.jobs, oldest.ID)
		}
	}
	s.jobs[j.ID] = j
	st := *j
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t, err := s.sender.SendTo(s.ctx, ae, insts, "", 0, func(t sendTally) bool {
			s.mu.Lock()
			j.Completed, j.Warning, j.Failed = t.Completed, t.Warning, t.Failed
			s.mu.Unlock()
			return true
		})
		s.mu.Lock()
		j.Completed, j.Warning, j.Failed = t.Completed, t.Warning, t.Failed
		j.Finished = s.clock.Now().UTC()
		j.State = api.SendDone
		if err != nil {
			j.State, j.Error = api.SendFailed, err.Error()
		}
		s.mu.Unlock()
		if err != nil {
			s.audit.Record(consent.Entry{Actor: actor, Action: actDICOMSend, Study: study, Decision: consent.DecisionAllow, Reason: "to:" + ae.Title + "; failed"})
		}
	}()
	return st, nil
}

// Status reports a send job.
func (s *sends) Status(id string) (SendStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return SendStatus{}, false
	}
	return *j, true
}

// List reports every job kept, newest first.
func (s *sends) List() []SendStatus {
	s.mu.Lock()
	out := make([]SendStatus, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, *j)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SendStatus) int { return b.Started.Compare(a.Started) })
	return out
}

func (s *sends) wait() { s.wg.Wait() }

// echo verifies a known AE as an SCU: an association proposing
// Verification (over DICOM TLS for an AE marked tls), C-ECHO, release.
func (d *dicomEdge) echo(ctx context.Context, ae AE) (time.Duration, error) {
	start := time.Now()
	r := &dimse.Requestor{CallingAE: d.aet, CalledAE: ae.Title, Limits: dimse.Limits{MaxPDU: d.cfg.MaxPDU},
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.Verification, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}}
	dial, err := d.dialer(ae)
	if err != nil {
		return 0, err
	}
	r.Dialer = dial
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := r.Dial(ctx, net.JoinHostPort(ae.Host, strconv.Itoa(ae.Port)))
	if err != nil {
		return 0, fmt.Errorf("associate with %s: %w", ae.Title, err)
	}
	if err := dimse.Echo(ctx, a, 1); err != nil {
		a.Abort()
		return 0, fmt.Errorf("C-ECHO to %s: %w", ae.Title, err)
	}
	if err := a.Release(); err != nil {
		return 0, fmt.Errorf("release the association with %s: %w", ae.Title, err)
	}
	return time.Since(start), nil
}
