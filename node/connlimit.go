package node

import (
	"syscall"

	"container/list"
	"context"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The local API must stay usable for its admin while any local user (or
// anyone who can reach http_addr) opens connections to it: without a
// bound, ~20,000 idle connections exhaust the node's file descriptors.
//
// connLimiter bounds the open connections (http.max_conns) and, among
// them, those that have not yet carried a request with the right token
// (http.max_unauthenticated_conns). A connection arriving when either
// bound is reached evicts the oldest unauthenticated one, preferring one
// that is idle (no request bytes pending) over one mid-request, so a
// flood of idle connections only ever evicts itself while an admin's
// connection, which sends its request at once, is served. Authenticated
// connections are never evicted; only when every open connection is
// authenticated is a new one refused. Timeouts do the rest: a
// connection has http.header_timeout to send its request headers
// (slowloris), may pause at most http.io_timeout in a body or a
// response, and is closed after http.idle_timeout between requests.

// connLimiter wraps the API's listener.
type connLimiter struct {
	net.Listener
	max, maxPre int

	mu    sync.Mutex
	total int
	pre   *list.List // of *limitedConn, unauthenticated, oldest first
}

func newConnLimiter(ln net.Listener, max, maxPre int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, maxPre: maxPre, pre: list.New()}
}

// limitedConn is one connection the limiter counts.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	elem   *list.Element // in l.pre while unauthenticated
	active bool          // reading or serving a request (http.StateActive)
	spoke  bool          // the peer sent bytes (set at the first read, before the server marks it active)
	gone   bool          // no longer counted (closed or evicted)
}

// Accept returns the next connection, evicting an unauthenticated one
// if the new one would exceed a bound.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		var victim *limitedConn
		if l.total >= l.max || l.pre.Len() >= l.maxPre {
			victim = l.victimLocked()
			if victim == nil { // every connection is an authenticated one
				l.mu.Unlock()
				c.Close()
				continue
			}
			l.dropLocked(victim)
		}
		lc := &limitedConn{Conn: c, l: l}
		lc.elem = l.pre.PushBack(lc)
		l.total++
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
		}
		return lc, nil
	}
}

// victimLocked picks the oldest idle unauthenticated connection, or the
// oldest unauthenticated one if all are mid-request. A connection whose
// request bytes wait in the kernel, not yet read by the server (a busy
// machine), is not idle: that is how an admin's fresh connection is told
// from a flood's silent ones before the server gets to it.
func (l *connLimiter) victimLocked() *limitedConn {
	var busy *limitedConn
	for e := l.pre.Front(); e != nil; e = e.Next() {
		c := e.Value.(*limitedConn)
		if !c.active && !c.spoke && !pendingBytes(c.Conn) {
			return c
		}
		if busy == nil {
			busy = c
		}
	}
	return busy
}

func (l *connLimiter) dropLocked(c *limitedConn) {
	if c.gone {
		return
	}
	c.gone = true
	l.total--
	if c.elem != nil {
		l.pre.Remove(c.elem)
		c.elem = nil
	}
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.l.mu.Lock()
		c.spoke = true
		c.l.mu.Unlock()
	}
	return n, err
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.dropLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// authenticated takes the connection out of the unauthenticated pool: it
// carried a request with the right token.
func (c *limitedConn) authenticated() {
	c.l.mu.Lock()
	if c.elem != nil {
		c.l.pre.Remove(c.elem)
		c.elem = nil
	}
	c.l.mu.Unlock()
}

// connState is the http.Server's ConnState hook.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	lc.active = st == http.StateActive
	l.mu.Unlock()
}

// open reports the counted connections and the unauthenticated ones.
func (l *connLimiter) open() (total, pre int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.pre.Len()
}

type connKey struct{}

// connContext is the http.Server's ConnContext hook: it lets the
// authentication middleware find the request's connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// markAuthenticated takes the connection of r out of the unauthenticated
// pool.
func markAuthenticated(r *http.Request) {
	if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok {
		lc.authenticated()
	}
}

// ioDeadlines bounds every pause in a request's body and its response to
// d, and nothing else: an import may stream for as long as its bytes keep
// coming, and an export may work for minutes before it answers.
// http.Server's ReadTimeout and WriteTimeout would bound the whole
// request instead.
func ioDeadlines(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(d)) // a deadline left by an earlier request on this connection is replaced
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, d: d}
		}
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: d}, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.d))
	return b.ReadCloser.Read(p)
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// pendingBytes reports whether the peer has sent bytes the server has not
// read yet (SIOCINQ on the socket).
func pendingBytes(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	raw.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n > 0
}
