package dimse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pacsnet/pacsnet/dicomio"
)

// Implementation identifies this implementation in associations.
type Implementation struct {
	ClassUID    string // default ImplementationClassUID
	VersionName string // default ImplementationVersionName
}

// pacsnet's implementation class UID (under the project's UID root, as
// the synthetic data's) and version name (at most 16 characters).
const (
	ImplementationClassUID    = "1.2.826.0.1.3680043.10.1455.1"
	ImplementationVersionName = "PACSNET_1"
)

func (im Implementation) withDefaults() Implementation {
	if im.ClassUID == "" {
		im.ClassUID = ImplementationClassUID
	}
	if im.VersionName == "" {
		im.VersionName = ImplementationVersionName
	}
	return im
}

// Acceptor answers association requests (the SCP side of a listener).
type Acceptor struct {
	AETitle        string
	AnyCalledAE    bool // accept any called AE title, not only AETitle
	Implementation Implementation
	Limits         Limits
	// Admit decides, after the protocol checks, whether the calling AE
	// may associate: nil admits; else the rejection to send.
	Admit func(rq *AssociateRQ, remote net.Addr) *AssociateRJ
	// Supports says whether an abstract syntax is accepted and whether
	// the requestor may take the SCP role on it (C-GET's storage).
	Supports func(abstract string) (ok, requestorSCP bool)
	// AcceptTS says whether a transfer syntax is accepted; default: the
	// ones dicomio reads (dicomio.KnownTransferSyntax).
	AcceptTS func(ts string) bool
}

// RejectedError is an association request refused by either side.
type RejectedError struct{ RJ AssociateRJ }

func (e *RejectedError) Error() string {
	return fmt.Sprintf("association rejected (%s)", rejectText(e.RJ))
}

func rejectText(rj AssociateRJ) string {
	perm := "permanent"
	if rj.Result == RejectTransient {
		perm = "transient"
	}
	why := "no reason given"
	switch {
	case rj.Source == RejectSourceUser && rj.Reason == RejectCallingAE:
		why = "calling AE title not recognized"
	case rj.Source == RejectSourceUser && rj.Reason == RejectCalledAE:
		why = "called AE title not recognized"
	case rj.Source == RejectSourceUser && rj.Reason == RejectAppContext:
		why = "application context not supported"
	case rj.Source == RejectSourceACSE && rj.Reason == RejectProtocolVersion:
		why = "protocol version not supported"
	case rj.Source == RejectSourcePresentation && rj.Reason == RejectCongestion:
		why = "temporary congestion"
	case rj.Source == RejectSourcePresentation && rj.Reason == RejectLocalLimit:
		why = "local limit exceeded"
	}
	return perm + ": " + why
}

// Accept performs the acceptor's side of association establishment on
// conn: it waits ARTIM for the A-ASSOCIATE-RQ, checks it, negotiates the
// presentation contexts and answers. On a rejection it returns a
// *RejectedError (the RJ was sent); on a protocol error it aborts. conn is
// closed on any error.
func (ac *Acceptor) Accept(conn net.Conn) (*Assoc, error) {
	lim := ac.Limits.withDefaults()
	im := ac.Implementation.withDefaults()
	rd := NewReader(conn, lim.MaxPDU)
	rd.quickAck = quickAck(conn)
	conn.SetReadDeadline(time.Now().Add(lim.ARTIM))
	p, err := rd.Read()
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			writeRaw(conn, lim, &Abort{Source: AbortSourceProvider, Reason: pe.Reason})
		}
		conn.Close()
		return nil, fmt.Errorf("association request: %w", err)
	}
	rq, ok := p.(*AssociateRQ)
	if !ok {
		writeRaw(conn, lim, &Abort{Source: AbortSourceProvider, Reason: AbortUnexpectedPDU})
		conn.Close()
		return nil, fmt.Errorf("association request: unexpected %T", p)
	}
	reject := func(rj AssociateRJ) (*Assoc, error) {
		writeRaw(conn, lim, &rj)
		conn.Close()
		return nil, &RejectedError{RJ: rj}
	}
	switch {
	case rq.ProtocolVersion&1 == 0:
		return reject(AssociateRJ{RejectPermanent, RejectSourceACSE, RejectProtocolVersion})
	case rq.AppContext != ApplicationContext:
		return reject(AssociateRJ{RejectPermanent, RejectSourceUser, RejectAppContext})
	case !ac.AnyCalledAE && rq.CalledAE != ac.AETitle:
		return reject(AssociateRJ{RejectPermanent, RejectSourceUser, RejectCalledAE})
	}
	if ac.Admit != nil {
		if rj := ac.Admit(rq, conn.RemoteAddr()); rj != nil {
			return reject(*rj)
		}
	}
	acceptTS := ac.AcceptTS
	if acceptTS == nil {
		acceptTS = dicomio.KnownTransferSyntax
	}
	out := &AssociateAC{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, AppContext: ApplicationContext,
		User: UserInfo{MaxLength: lim.MaxPDU, HasMaxLength: true, ImplementationClass: im.ClassUID, ImplementationVersion: im.VersionName}}
	if rq.User.AsyncOps != nil {
		out.User.AsyncOps = &AsyncOps{Invoked: 1, Performed: 1}
	}
	roles := map[string]RoleSelection{}
	for _, r := range rq.User.Roles {
		roles[r.SOPClass] = r
	}
	answered := map[string]bool{}
	contexts := map[byte]*Context{}
	seenIDs := map[byte]bool{}
	for _, pc := range rq.Contexts {
		if seenIDs[pc.ID] {
			writeRaw(conn, lim, &Abort{Source: AbortSourceProvider, Reason: AbortInvalidParam})
			conn.Close()
			return nil, fmt.Errorf("association request: presentation context ID %d twice", pc.ID)
		}
		seenIDs[pc.ID] = true
		res := ContextAC{ID: pc.ID}
		supported, scpOK := false, false
		if ac.Supports != nil {
			supported, scpOK = ac.Supports(pc.AbstractSyntax)
		}
		if !supported {
			res.Result = ContextAbstractRejected
			out.Contexts = append(out.Contexts, res)
			continue
		}
		for _, ts := range pc.TransferSyntaxes {
			if acceptTS(ts) {
				res.TransferSyntax = ts
				break
			}
		}
		if res.TransferSyntax == "" {
			res.Result = ContextTransferRejected
			out.Contexts = append(out.Contexts, res)
			continue
		}
		c := &Context{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: res.TransferSyntax}
		if r, ok := roles[pc.AbstractSyntax]; ok && !answered[pc.AbstractSyntax] {
			// The requestor proposed roles: it keeps the SCU role it asked
			// for and gets the SCP role if we allow it here.
			answered[pc.AbstractSyntax] = true
			c.RequestorSCP = r.SCP && scpOK
			out.User.Roles = append(out.User.Roles, RoleSelection{SOPClass: pc.AbstractSyntax, SCU: r.SCU, SCP: c.RequestorSCP})
		} else if ok {
			c.RequestorSCP = r.SCP && scpOK
		}
		contexts[pc.ID] = c
		out.Contexts = append(out.Contexts, res)
	}
	if err := writeRaw(conn, lim, out); err != nil {
		conn.Close()
		return nil, err
	}
	peerMax := uint32(0)
	if rq.User.HasMaxLength {
		peerMax = rq.User.MaxLength
	}
	return newAssoc(conn, lim, rd, peerMax, contexts, rq.CalledAE, rq.CallingAE,
		rq.User.ImplementationClass+" "+rq.User.ImplementationVersion), nil
}

// writeRaw writes one PDU on a connection that has no Assoc yet.
func writeRaw(conn net.Conn, lim Limits, p PDU) error {
	conn.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
	_, err := conn.Write(AppendPDU(nil, p))
	return err
}

// Requestor opens associations (the SCU side).
type Requestor struct {
	CallingAE      string
	CalledAE       string
	Implementation Implementation
	Limits         Limits
	Contexts       []ContextRQ     // IDs are assigned (1, 3, 5, …) when zero
	Roles          []RoleSelection // e.g. SCP for storage classes, for C-GET
	Dialer         func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial connects to addr and requests an association. A rejection is a
// *RejectedError.
func (r *Requestor) Dial(ctx context.Context, addr string) (*Assoc, error) {
	dial := r.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	// ctx also bounds the negotiation: a peer that accepts the
	// connection and never answers is left when ctx ends, not after ARTIM.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	a, err := r.Associate(conn)
	if !stop() {
		if err == nil {
			a.Abort()
		}
		return nil, fmt.Errorf("associate: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Associate requests an association on an open connection.
func (r *Requestor) Associate(conn net.Conn) (*Assoc, error) {
	lim := r.Limits.withDefaults()
	im := r.Implementation.withDefaults()
	rq := &AssociateRQ{ProtocolVersion: 1, CalledAE: r.CalledAE, CallingAE: r.CallingAE, AppContext: ApplicationContext,
		User: UserInfo{MaxLength: lim.MaxPDU, HasMaxLength: true, ImplementationClass: im.ClassUID,
			ImplementationVersion: im.VersionName, Roles: r.Roles}}
	proposed := map[byte]ContextRQ{}
	next := byte(1)
	for _, pc := range r.Contexts {
		if pc.ID == 0 {
			pc.ID = next
		}
		next = pc.ID + 2
		rq.Contexts = append(rq.Contexts, pc)
		proposed[pc.ID] = pc
	}
	if err := writeRaw(conn, lim, rq); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send association request: %w", err)
	}
	rd := NewReader(conn, lim.MaxPDU)
	rd.quickAck = quickAck(conn)
	conn.SetReadDeadline(time.Now().Add(lim.ARTIM))
	p, err := rd.Read()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("association answer: %w", err)
	}
	switch p := p.(type) {
	case *AssociateRJ:
		conn.Close()
		return nil, &RejectedError{RJ: *p}
	case *Abort:
		conn.Close()
		return nil, fmt.Errorf("association request: %w", ErrAborted)
	case *AssociateAC:
		peerMax := uint32(0)
		if p.User.HasMaxLength {
			peerMax = p.User.MaxLength
		}
		roles := map[string]RoleSelection{}
		for _, rs := range p.User.Roles {
			roles[rs.SOPClass] = rs
		}
		contexts := map[byte]*Context{}
		for _, c := range p.Contexts {
			pc, ok := proposed[c.ID]
			if !ok || c.Result != ContextAccepted {
				continue
			}
			ctx := &Context{ID: c.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: c.TransferSyntax}
			if rs, ok := roles[pc.AbstractSyntax]; ok {
				ctx.RequestorSCP = rs.SCP
			}
			contexts[c.ID] = ctx
		}
		return newAssoc(conn, lim, rd, peerMax, contexts, r.CalledAE, r.CallingAE,
			p.User.ImplementationClass+" "+p.User.ImplementationVersion), nil
	default:
		writeRaw(conn, lim, &Abort{Source: AbortSourceUser, Reason: AbortUnexpectedPDU})
		conn.Close()
		return nil, fmt.Errorf("association answer: unexpected %T", p)
	}
}

// ContextFor returns an accepted context for the abstract syntax, one
// with transfer syntax ts if ts is not empty.
func (a *Assoc) ContextFor(abstract, ts string) *Context {
	var best *Context
	for _, c := range a.contexts {
		if c.AbstractSyntax == abstract && (ts == "" || c.TransferSyntax == ts) {
			if best == nil || c.ID < best.ID {
				best = c
			}
		}
	}
	return best
}
