package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// connClosed reports whether the server has closed c (reading gives EOF
// or a reset rather than a timeout).
func connClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// A flood of idle connections (any local user can open them) neither
// exhausts the node's file descriptors nor keeps the admin out: the node
// holds at most http.max_unauthenticated_conns of them, closing the
// oldest, and authenticated requests are served all along.
func TestAPIConnectionFlood(t *testing.T) {
	n := newNode(t, "Flooded")
	importCT(t, n, 11, 1)
	maxPre := n.cfg.HTTP.MaxUnauthenticatedConns
	const flood = 2000
	auth := "Bearer " + n.keys.apiToken
	admin := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	// The admin's client retries a GET whose fresh connection the node
	// closed before reading it, as api.Client does: on a busy machine the
	// flood may push it out before its request arrives.
	studies := func() (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.HTTPAddr()+"/api/v1/studies", nil)
		req.Header.Set("Authorization", auth)
		resp, err := admin.Do(req)
		for try := 0; err != nil && errors.Is(err, io.EOF) && try < 3; try++ {
			time.Sleep(50 * time.Millisecond)
			resp, err = admin.Do(req)
		}
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return 0, errors.New(resp.Status)
		}
		return time.Since(start), nil
	}

	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < flood; i++ {
			c, err := net.DialTimeout("tcp", n.HTTPAddr(), 5*time.Second)
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		done <- nil
	}()
	// The admin is served while the flood goes on, and promptly.
	for i := 0; i < 5; i++ {
		d, err := studies()
		if err != nil || d > 2*time.Second {
			t.Fatalf("authenticated request %d during the flood: %v after %v", i, err, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("flood: %v", err)
	}
	if d, err := studies(); err != nil || d > 2*time.Second {
		t.Fatalf("authenticated request after the flood: %v after %v", err, d)
	}
	// The node holds no more than its bound of them: the rest it closed.
	waitFor(t, 5*time.Second, "the node to close the flood's connections", func() bool {
		total, pre := n.conns.open()
		return pre <= maxPre && total <= maxPre+1
	})
	// The client sees each close a moment after the node made it.
	open := 0
	waitFor(t, 5*time.Second, "the flood's clients to see their connections closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		open = 0
		for _, c := range conns {
			if !connClosed(c) {
				open++
			}
		}
		return open <= maxPre
	})
	if open > maxPre {
		t.Fatalf("%d of %d idle connections still open, want at most %d", open, flood, maxPre)
	}
}

// A connection that dribbles its headers (slowloris) is closed after
// http.header_timeout; a stalled request body after http.io_timeout; a
// kept-alive connection of the admin still works after a pause longer
// than io_timeout.
func TestAPITimeouts(t *testing.T) {
	n := newNode(t, "Timeouts", nodeSetup{cfg: func(c *Config) {
		c.HTTP.HeaderTimeout = Duration{500 * time.Millisecond}
		c.HTTP.IOTimeout = Duration{500 * time.Millisecond}
	}})
	auth := "Bearer " + n.keys.apiToken

	t.Run("slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET /api/v1/studies HTTP/1.1\r\nHost: x\r\n")
		for time.Since(start) < 5*time.Second {
			if _, err := io.WriteString(c, "X-Slow: a\r\n"); err != nil {
				break
			}
			if connClosed(c) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a connection dribbling its headers was kept %v", d)
		}
	})

	t.Run("stalled body", func(t *testing.T) {
		c, err := net.Dial("tcp", n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "POST /api/v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: "+auth+"\r\nContent-Type: application/dicom\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("\x00", 200))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		if d := time.Since(start); d > 2*time.Second || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("a stalled upload was kept %v (%v)", d, err)
		}
	})

	t.Run("keep-alive after a pause", func(t *testing.T) {
		cl := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 2; i++ {
			req, _ := http.NewRequest(http.MethodGet, "http://"+n.HTTPAddr()+"/api/v1/studies", nil)
			req.Header.Set("Authorization", auth)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: %s", i, resp.Status)
			}
			time.Sleep(800 * time.Millisecond)
		}
	})
}
