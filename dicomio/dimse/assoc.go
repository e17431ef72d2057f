package dimse

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Context is an accepted presentation context of an association.
type Context struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string
	// SCP is true when the requestor may act as SCP on this context
	// (role selection; C-GET's C-STORE sub-operations need it).
	RequestorSCP bool
}

// Message is one DIMSE message received: its command and, when the
// command says one follows, its data set as a stream. Data must be read
// to its end (or Discard called) before the next Recv.
type Message struct {
	Context *Context
	Command *Command
	Data    *DataReader // nil: no data set
}

// ErrAborted is returned by Recv after the peer aborted the association;
// ErrReleased after it released it (the release was answered).
var (
	ErrAborted  = errors.New("association aborted")
	ErrReleased = errors.New("association released")
)

// Limits of an association, whichever side opened it.
type Limits struct {
	MaxPDU       uint32        // the largest P-DATA-TF we accept (announced to the peer); default 1 MiB
	MaxSendPDU   uint32        // cap on the P-DATA-TF we send whatever the peer accepts; default 1 MiB
	ARTIM        time.Duration // wait for the association request or a release answer; default 30s
	Idle         time.Duration // no PDU from the peer while no operation runs; default 5m
	WriteTimeout time.Duration // one PDU write; default 2m
	// DataBuffer is how many PDU-sized chunks of a data set may wait for
	// their reader; memory per association is about (DataBuffer+2) × MaxPDU.
	DataBuffer int
}

func (l Limits) withDefaults() Limits {
	if l.MaxPDU == 0 {
		l.MaxPDU = 1 << 20
	}
	if l.MaxSendPDU == 0 {
		l.MaxSendPDU = 1 << 20
	}
	if l.ARTIM == 0 {
		l.ARTIM = 30 * time.Second
	}
	if l.Idle == 0 {
		l.Idle = 5 * time.Minute
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = 2 * time.Minute
	}
	if l.DataBuffer == 0 {
		l.DataBuffer = 4
	}
	return l
}

// Assoc is an established association. Recv is for one goroutine at a
// time (the service loop, and a handler it called); Send may be called
// from any goroutine.
type Assoc struct {
	conn      net.Conn
	lim       Limits
	CalledAE  string
	CallingAE string
	// PeerImplementation is the peer's implementation class UID and
	// version name, for logs.
	PeerImplementation string
	contexts           map[byte]*Context
	sendMax            uint32 // data bytes per PDV we send

	wmu sync.Mutex
	bw  *bufio.Writer
	buf []byte

	msgs      chan *Message
	done      chan struct{} // closed when the reader goroutine ends
	rerr      error         // why it ended (after done)
	releaseRP chan struct{} // the peer answered our A-RELEASE-RQ
	busyN     int           // operations running (under cmu): the idle timeout waits

	cmu      sync.Mutex
	canceled map[uint16]bool // message IDs the peer sent C-CANCEL for

	closeOnce sync.Once
}

// Contexts returns the accepted presentation contexts.
func (a *Assoc) Contexts() []*Context {
	out := make([]*Context, 0, len(a.contexts))
	for _, c := range a.contexts {
		out = append(out, c)
	}
	return out
}

// RemoteAddr is the peer's address.
func (a *Assoc) RemoteAddr() net.Addr { return a.conn.RemoteAddr() }

func newAssoc(conn net.Conn, lim Limits, rd *Reader, peerMax uint32, contexts map[byte]*Context, called, calling, peerImpl string) *Assoc {
	a := &Assoc{conn: conn, lim: lim, contexts: contexts, CalledAE: called, CallingAE: calling, PeerImplementation: peerImpl, bw: bufio.NewWriterSize(conn, 64<<10),
		msgs: make(chan *Message), done: make(chan struct{}), releaseRP: make(chan struct{}, 1),
		canceled: map[uint16]bool{}}
	send := lim.MaxSendPDU
	if peerMax != 0 && peerMax < send {
		send = peerMax
	}
	if send < 8 {
		send = 8
	}
	a.sendMax = (send - 6) &^ 1 // one PDV per PDU, even-length fragments
	go a.readLoop(rd)
	return a
}

// Begin and End bracket an operation (a handler at work): while one runs,
// the peer's silence is not idleness.
func (a *Assoc) Begin() { a.cmu.Lock(); a.busyN++; a.cmu.Unlock() }
func (a *Assoc) End()   { a.cmu.Lock(); a.busyN--; a.cmu.Unlock() }

func (a *Assoc) isBusy() bool { a.cmu.Lock(); defer a.cmu.Unlock(); return a.busyN > 0 }

// Canceled reports whether the peer sent a C-CANCEL for message id.
func (a *Assoc) Canceled(id uint16) bool {
	a.cmu.Lock()
	defer a.cmu.Unlock()
	return a.canceled[id]
}

// readLoop decodes PDUs and assembles messages until the association
// ends; it owns the read side of the connection.
func (a *Assoc) readLoop(rd *Reader) {
	defer close(a.done)
	defer close(a.msgs)
	var (
		cmdBuf []byte
		cmdCtx byte
		data   *DataReader
	)
	fail := func(err error) {
		a.rerr = err
		if data != nil {
			data.fail(err)
		}
	}
	for {
		a.conn.SetReadDeadline(time.Now().Add(a.lim.Idle))
		p, err := rd.Read()
		if err != nil {
			var ne net.Error
			// A handler at work (a C-MOVE's sub-operations) excuses the
			// peer's silence, unless the handler waits for the rest of a
			// data set from this peer: a sender that stalls mid-data-set
			// would hold the association (and an ingest slot) forever.
			if errors.As(err, &ne) && ne.Timeout() && a.isBusy() && data == nil {
				continue
			}
			var pe *ProtocolError
			if errors.As(err, &pe) {
				a.sendAbort(AbortSourceProvider, pe.Reason)
			} else if errors.As(err, &ne) && ne.Timeout() {
				a.sendAbort(AbortSourceProvider, AbortNotSpecified)
				err = fmt.Errorf("idle for %s: %w", a.lim.Idle, err)
			}
			a.conn.Close()
			fail(err)
			return
		}
		switch p := p.(type) {
		case *PData:
			for _, v := range p.Values {
				pc := a.contexts[v.Context]
				if pc == nil {
					a.abortWith(AbortInvalidParam)
					fail(fmt.Errorf("presentation data value on context %d, which was not accepted", v.Context))
					return
				}
				if v.Command {
					if data != nil {
						a.abortWith(AbortUnexpectedPDU)
						fail(errors.New("a command fragment arrived inside a data set"))
						return
					}
					if len(cmdBuf) > 0 && cmdCtx != v.Context {
						a.abortWith(AbortUnexpectedPDU)
						fail(errors.New("command fragments on two presentation contexts"))
						return
					}
					cmdCtx = v.Context
					if len(cmdBuf)+len(v.Data) > maxCommandSet {
						a.abortWith(AbortInvalidParam)
						fail(fmt.Errorf("command set over %d bytes", maxCommandSet))
						return
					}
					cmdBuf = append(cmdBuf, v.Data...)
					if !v.Last {
						continue
					}
					cmd, err := DecodeCommand(cmdBuf)
					cmdBuf = cmdBuf[:0]
					if err != nil {
						a.abortWith(AbortInvalidParam)
						fail(fmt.Errorf("malformed command set: %w", err))
						return
					}
					if cmd.Field == CCancelRQ {
						a.cmu.Lock()
						if len(a.canceled) > 1024 {
							clear(a.canceled)
						}
						a.canceled[cmd.MessageIDBeingAnswered] = true
						a.cmu.Unlock()
						continue
					}
					m := &Message{Context: pc, Command: cmd}
					if cmd.HasDataSet {
						data = newDataReader(v.Context, a.lim.DataBuffer)
						m.Data = data
					}
					select {
					case a.msgs <- m:
					case <-time.After(a.lim.Idle):
						// Nobody reads: the service loop is gone.
						a.abortWith(AbortNotSpecified)
						fail(errors.New("message not taken"))
						return
					}
					continue
				}
				if data == nil || data.ctx != v.Context {
					a.abortWith(AbortUnexpectedPDU)
					fail(errors.New("a data set fragment arrived without its command"))
					return
				}
				if !data.push(copyChunk(v.Data), a.lim.Idle) {
					a.abortWith(AbortNotSpecified)
					fail(errors.New("data set not read"))
					return
				}
				if v.Last {
					data.finish()
					data = nil
				}
			}
		case *ReleaseRQ:
			a.send(&ReleaseRP{})
			a.conn.Close()
			fail(ErrReleased)
			return
		case *ReleaseRP:
			select {
			case a.releaseRP <- struct{}{}:
			default:
			}
			fail(ErrReleased)
			return
		case *Abort:
			a.conn.Close()
			fail(ErrAborted)
			return
		default:
			a.abortWith(AbortUnexpectedPDU)
			fail(fmt.Errorf("unexpected %T on an established association", p))
			return
		}
	}
}

// Recv returns the next message; ErrReleased or ErrAborted (or the read
// error) when the association ended.
func (a *Assoc) Recv(ctx context.Context) (*Message, error) {
	select {
	case m, ok := <-a.msgs:
		if !ok {
			<-a.done
			return nil, a.rerr
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send sends a command and, if data is not nil, its data set (read to
// EOF), fragmented to the peer's maximum PDU length.
func (a *Assoc) Send(ctxID byte, cmd *Command, data io.Reader) error {
	cmd.HasDataSet = data != nil
	a.wmu.Lock()
	defer a.wmu.Unlock()
	cb := cmd.Encode()
	for len(cb) > 0 {
		n := min(len(cb), int(a.sendMax))
		if err := a.writePDVLocked(ctxID, true, n == len(cb), cb[:n]); err != nil {
			return err
		}
		cb = cb[n:]
	}
	if data == nil {
		return a.flushLocked()
	}
	// Two buffers: a chunk is sent once the next read shows whether it is
	// the last (the last fragment carries the bit).
	if cap(a.buf) < 2*int(a.sendMax) {
		a.buf = make([]byte, 2*a.sendMax)
	}
	cur, next := a.buf[:a.sendMax], a.buf[a.sendMax:2*a.sendMax]
	n, err := io.ReadFull(data, cur)
	for {
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if werr := a.writePDVLocked(ctxID, false, true, cur[:n]); werr != nil {
				return werr
			}
			return a.flushLocked()
		case err != nil:
			a.abortLocked(AbortSourceUser, AbortNotSpecified)
			return fmt.Errorf("read data set to send: %w", err)
		}
		m, err2 := io.ReadFull(data, next)
		if err2 == io.EOF {
			if werr := a.writePDVLocked(ctxID, false, true, cur[:n]); werr != nil {
				return werr
			}
			return a.flushLocked()
		}
		if werr := a.writePDVLocked(ctxID, false, false, cur[:n]); werr != nil {
			return werr
		}
		cur, next = next, cur
		n, err = m, err2
	}
}

func (a *Assoc) writePDVLocked(ctxID byte, command, last bool, b []byte) error {
	// One PDV per PDU: PDU length = PDV item (4 + 2 + data); PDV length
	// = 2 + data.
	var hdr [12]byte
	hdr[0] = typePData
	binary.BigEndian.PutUint32(hdr[2:], uint32(4+2+len(b)))
	binary.BigEndian.PutUint32(hdr[6:], uint32(2+len(b)))
	hdr[10] = ctxID
	var mch byte
	if command {
		mch |= 1
	}
	if last {
		mch |= 2
	}
	hdr[11] = mch
	a.conn.SetWriteDeadline(time.Now().Add(a.lim.WriteTimeout))
	if _, err := a.bw.Write(hdr[:]); err != nil {
		return a.writeFailed(err)
	}
	if _, err := a.bw.Write(b); err != nil {
		return a.writeFailed(err)
	}
	return nil
}

func (a *Assoc) flushLocked() error {
	a.conn.SetWriteDeadline(time.Now().Add(a.lim.WriteTimeout))
	if err := a.bw.Flush(); err != nil {
		return a.writeFailed(err)
	}
	return nil
}

func (a *Assoc) writeFailed(err error) error {
	a.conn.Close()
	return fmt.Errorf("send to %s: %w", a.conn.RemoteAddr(), err)
}

// send writes one whole PDU.
func (a *Assoc) send(p PDU) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.sendLocked(p)
}

func (a *Assoc) sendLocked(p PDU) error {
	a.conn.SetWriteDeadline(time.Now().Add(a.lim.WriteTimeout))
	if _, err := a.bw.Write(AppendPDU(nil, p)); err != nil {
		return a.writeFailed(err)
	}
	return a.flushLocked()
}

func (a *Assoc) sendAbort(source, reason byte) { a.send(&Abort{Source: source, Reason: reason}) }

func (a *Assoc) abortWith(reason byte) {
	a.sendAbort(AbortSourceProvider, reason)
	a.conn.Close()
}

func (a *Assoc) abortLocked(source, reason byte) {
	a.sendLocked(&Abort{Source: source, Reason: reason})
	a.conn.Close()
}

// Abort aborts the association (A-ABORT from the service user).
func (a *Assoc) Abort() {
	a.sendAbort(AbortSourceUser, AbortNotSpecified)
	a.Close()
}

// Release asks the peer to release the association and waits (ARTIM) for
// its answer, then closes.
func (a *Assoc) Release() error {
	if err := a.send(&ReleaseRQ{}); err != nil {
		a.Close()
		return err
	}
	select {
	case <-a.releaseRP:
		a.Close()
		return nil
	case <-a.done:
		a.Close()
		if errors.Is(a.rerr, ErrReleased) {
			return nil
		}
		return fmt.Errorf("release: %w", a.rerr)
	case <-time.After(a.lim.ARTIM):
		a.Abort()
		return errors.New("release: no answer within the ARTIM timeout; aborted")
	}
}

// Close closes the connection and waits for the reader to end.
func (a *Assoc) Close() {
	a.closeOnce.Do(func() { a.conn.Close() })
	<-a.done
}

// ---- data sets as streams

// DataReader streams one data set as its fragments arrive. Its memory is
// bounded by the association's DataBuffer chunks.
type DataReader struct {
	ctx    byte
	chunks chan []byte
	cur    []byte
	buf    []byte // the pooled chunk cur points into
	mu     sync.Mutex
	err    error // set before chunks is closed: io.EOF at the end, else why
	once   sync.Once
}

func newDataReader(ctx byte, n int) *DataReader {
	return &DataReader{ctx: ctx, chunks: make(chan []byte, n)}
}

func (d *DataReader) push(b []byte, wait time.Duration) bool {
	select {
	case d.chunks <- b:
		return true
	case <-time.After(wait):
		d.fail(errors.New("data set reader stalled"))
		return false
	}
}

func (d *DataReader) finish() { d.end(io.EOF) }

func (d *DataReader) fail(err error) {
	if err == nil || errors.Is(err, ErrReleased) {
		err = io.ErrUnexpectedEOF
	}
	d.end(fmt.Errorf("data set interrupted: %w", err))
}

func (d *DataReader) end(err error) {
	d.once.Do(func() {
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(d.chunks)
	})
}

// Read implements io.Reader.
func (d *DataReader) Read(p []byte) (int, error) {
	for len(d.cur) == 0 {
		b, ok := <-d.chunks
		if !ok {
			d.mu.Lock()
			defer d.mu.Unlock()
			return 0, d.err
		}
		d.cur, d.buf = b, b
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	if len(d.cur) == 0 && d.buf != nil {
		putChunk(d.buf)
		d.buf, d.cur = nil, nil
	}
	return n, nil
}

// Chunks of data sets are copied out of the PDU buffer (which the next
// PDU reuses) into pooled buffers, given back once read: a data set of
// hundreds of PDUs costs no garbage.
var chunkPool sync.Pool

func copyChunk(b []byte) []byte {
	if p, ok := chunkPool.Get().(*[]byte); ok && cap(*p) >= len(b) {
		return append((*p)[:0], b...)
	}
	return append(make([]byte, 0, max(len(b), 64<<10)), b...)
}

func putChunk(b []byte) {
	if cap(b) > 4<<20 {
		return // an unusually large PDU's buffer is not kept
	}
	b = b[:0]
	chunkPool.Put(&b)
}

// Discard reads and drops the rest of the data set.
func (d *DataReader) Discard() error {
	_, err := io.Copy(io.Discard, d)
	return err
}
