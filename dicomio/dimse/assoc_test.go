package dimse

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pair runs an acceptor on a loopback listener and returns a requestor
// aimed at it; handlers serve each association.
func pair(t *testing.T, ac *Acceptor, handlers map[uint16]HandlerFunc) (addr string, served chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served = make(chan error, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				a, err := ac.Accept(conn)
				if err != nil {
					served <- err
					return
				}
				served <- Serve(context.Background(), a, handlers)
			}()
		}
	}()
	return ln.Addr().String(), served
}

func testAcceptor() *Acceptor {
	return &Acceptor{AETitle: "PACSNET", Limits: Limits{MaxPDU: 16384},
		Supports: func(as string) (bool, bool) { return as == Verification || as == "1.2.840.10008.5.1.4.1.1.2", true }}
}

func TestEchoAndRelease(t *testing.T) {
	addr, served := pair(t, testAcceptor(), nil)
	r := &Requestor{CallingAE: "TESTSCU", CalledAE: "PACSNET",
		Contexts: []ContextRQ{{AbstractSyntax: Verification, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}}
	a, err := r.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint16(1); id <= 3; id++ {
		if err := Echo(context.Background(), a, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func TestRejections(t *testing.T) {
	ac := testAcceptor()
	ac.Admit = func(rq *AssociateRQ, _ net.Addr) *AssociateRJ {
		if rq.CallingAE != "KNOWN" {
			return &AssociateRJ{RejectPermanent, RejectSourceUser, RejectCallingAE}
		}
		return nil
	}
	addr, _ := pair(t, ac, nil)
	for _, tc := range []struct {
		calling, called string
		reason          byte
	}{
		{"STRANGER", "PACSNET", RejectCallingAE},
		{"KNOWN", "OTHER", RejectCalledAE},
	} {
		r := &Requestor{CallingAE: tc.calling, CalledAE: tc.called,
			Contexts: []ContextRQ{{AbstractSyntax: Verification, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}}
		_, err := r.Dial(context.Background(), addr)
		var rj *RejectedError
		if !errors.As(err, &rj) || rj.RJ.Reason != tc.reason || rj.RJ.Source != RejectSourceUser {
			t.Errorf("%s → %s: %v, want rejection reason %d", tc.calling, tc.called, err, tc.reason)
		}
	}
}

// A data set larger than many PDUs arrives whole, in order, with the
// fragments even-length and within both sides' limits.
func TestDataSetFragmentation(t *testing.T) {
	payload := make([]byte, 3<<20+2)
	rand.Read(payload)
	got := make(chan []byte, 1)
	store := func(_ context.Context, a *Assoc, m *Message) error {
		b, err := io.ReadAll(m.Data)
		if err != nil {
			return err
		}
		got <- b
		return a.Send(m.Context.ID, &Command{Field: CStoreRSP, MessageIDBeingAnswered: m.Command.MessageID,
			AffectedSOPClass: m.Command.AffectedSOPClass, AffectedSOPInstance: m.Command.AffectedSOPInstance}, nil)
	}
	addr, served := pair(t, testAcceptor(), map[uint16]HandlerFunc{CStoreRQ: store})
	r := &Requestor{CallingAE: "TESTSCU", CalledAE: "PACSNET", Limits: Limits{MaxPDU: 32768},
		Contexts: []ContextRQ{{AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{"1.2.840.10008.1.2.1"}}}}
	a, err := r.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	pc := a.ContextFor("1.2.840.10008.5.1.4.1.1.2", "")
	if pc == nil || pc.TransferSyntax != "1.2.840.10008.1.2.1" {
		t.Fatalf("context %+v", pc)
	}
	if a.sendMax != 16384-6 {
		t.Fatalf("send fragments of %d bytes, want the peer's 16384 less the PDV header", a.sendMax)
	}
	if err := a.Send(pc.ID, &Command{Field: CStoreRQ, MessageID: 9, AffectedSOPClass: pc.AbstractSyntax, AffectedSOPInstance: "1.2.3"},
		bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	rsp, err := a.Recv(context.Background())
	if err != nil || rsp.Command.Field != CStoreRSP || rsp.Command.MessageIDBeingAnswered != 9 {
		t.Fatalf("response %+v, %v", rsp, err)
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("received %d bytes, differ from the %d sent", len(b), len(payload))
	}
	a.Release()
	<-served
}

// Garbage instead of an association request, or a PDU of a type the
// state does not allow, aborts that connection and nothing else.
func TestProtocolErrorsAbort(t *testing.T) {
	addr, served := pair(t, testAcceptor(), nil)
	for _, raw := range [][]byte{
		{0x09, 0, 0, 0, 0, 0},                      // unknown PDU type
		AppendPDU(nil, &ReleaseRQ{}),               // release before association
		{0x01, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, // oversized associate request
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(raw)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		p, err := NewReader(conn, 1<<16).Read()
		conn.Close()
		if _, ok := p.(*Abort); !ok {
			t.Errorf("% x: answer %T %v, want an A-ABORT", raw, p, err)
		}
		if err := <-served; err == nil {
			t.Errorf("% x: the server saw no error", raw)
		}
	}
	// The listener still serves.
	r := &Requestor{CallingAE: "TESTSCU", CalledAE: "PACSNET",
		Contexts: []ContextRQ{{AbstractSyntax: Verification, TransferSyntaxes: []string{"1.2.840.10008.1.2"}}}}
	a, err := r.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := Echo(context.Background(), a, 1); err != nil {
		t.Fatal(err)
	}
	a.Release()
}
