// Package rsyslogtest runs Debian's rsyslogd as a syslog collector for
// tests: on a free loopback port, with its own configuration, work
// directory and output file in the test's temporary directory, started and
// stopped by its PID. It never touches the system's logs: it loads only
// imtcp and writes only to its output file, one received message per line.
package rsyslogtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TLSFiles are PEM files for rsyslog's gtls driver.
type TLSFiles struct{ CA, Cert, Key string }

// Collector is one rsyslogd.
type Collector struct {
	t    testing.TB
	dir  string
	conf string
	out  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns rsyslogd's path, or skips the test saying how to install
// it (make deps) when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		t.Skip("rsyslogd is not installed: run make deps")
	}
	return bin
}

// New writes the configuration of a collector on a free loopback port
// (with TLS when tf is set); Start starts it. It is stopped when the test
// ends.
func New(t testing.TB, tf *TLSFiles) *Collector {
	t.Helper()
	Binary(t)
	dir := t.TempDir()
	r := &Collector{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), out: filepath.Join(dir, "received.log"), port: FreePort(t)}
	// %rawmsg% is the message as received, without the octet count: one
	// line per message (the messages hold no newlines).
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k"%s)
module(load="imtcp"%s)
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="audit") {
  action(type="omfile" file=%q template="raw")
}
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="audit")
`, dir, tlsGlobal(tf), tlsModule(tf), r.out, r.port)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func tlsGlobal(tf *TLSFiles) string {
	if tf == nil {
		return ""
	}
	return fmt.Sprintf(` defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q`,
		tf.CA, tf.Cert, tf.Key)
}

func tlsModule(tf *TLSFiles) string {
	if tf == nil {
		return ""
	}
	return ` streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"`
}

// Addr is the collector's host:port.
func (r *Collector) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Out is the file the received messages are written to.
func (r *Collector) Out() string { return r.out }

// Start starts rsyslogd in the foreground (-n) and waits until it accepts
// connections.
func (r *Collector) Start() {
	r.t.Helper()
	if r.cmd != nil {
		r.t.Fatal("rsyslog already running")
	}
	cmd := exec.Command(Binary(r.t), "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(r.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-r.done:
			r.cmd = nil
			r.t.Fatalf("rsyslogd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd does not listen on %s: %v; %s", r.Addr(), err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the rsyslogd this test started, by its process: SIGTERM, so
// it writes out what it received, then SIGKILL if it hangs.
func (r *Collector) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// Kill kills the rsyslogd this test started (SIGKILL), as a crash.
func (r *Collector) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Lines returns the messages received so far, one per line: only whole
// lines, since rsyslogd may be halfway through writing the last one (a
// long DICOM audit message goes out in several writes).
func (r *Collector) Lines() ([][]byte, error) {
	b, err := os.ReadFile(r.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return out, nil // nothing, or a line still being written
		}
		out = append(out, b[:i])
		b = b[i+1:]
	}
}

// FreePort is a TCP port free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
