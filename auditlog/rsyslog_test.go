package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// rsyslog is a Debian rsyslogd started by a test on loopback with its own
// configuration, work directory and output file in t.TempDir(). It never
// touches the system's logs: it loads only imtcp and writes only to its
// output file.
type rsyslog struct {
	t    testing.TB
	dir  string
	conf string
	out  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// tlsFiles are PEM files for rsyslog's gtls driver.
type tlsFiles struct{ ca, cert, key string }

func rsyslogBinary(t testing.TB) string {
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

// newRsyslog writes the configuration for a collector on a free loopback
// port; start starts it.
func newRsyslog(t testing.TB, tf *tlsFiles) *rsyslog {
	t.Helper()
	rsyslogBinary(t)
	dir := t.TempDir()
	r := &rsyslog{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), out: filepath.Join(dir, "received.log"), port: freePort(t)}
	// %rawmsg% is the message as received, without the octet count: one
	// line per message (ours have no newlines).
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
	t.Cleanup(r.stop)
	return r
}

func tlsGlobal(tf *tlsFiles) string {
	if tf == nil {
		return ""
	}
	return fmt.Sprintf(` defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q`,
		tf.ca, tf.cert, tf.key)
}

func tlsModule(tf *tlsFiles) string {
	if tf == nil {
		return ""
	}
	return ` streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon"`
}

func (r *rsyslog) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// start starts rsyslogd in the foreground (-n) and waits until it
// accepts connections.
func (r *rsyslog) start() {
	r.t.Helper()
	if r.cmd != nil {
		r.t.Fatal("rsyslog already running")
	}
	cmd := exec.Command(rsyslogBinary(r.t), "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
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
		c, err := net.DialTimeout("tcp", r.addr(), 200*time.Millisecond)
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
			r.t.Fatalf("rsyslogd does not listen on %s: %v; %s", r.addr(), err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops the rsyslogd this test started, by its process: SIGTERM, so
// it writes out what it received, then SIGKILL if it hangs.
func (r *rsyslog) stop() {
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

// kill kills the rsyslogd this test started (SIGKILL), as a crash.
func (r *rsyslog) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// received returns the seq of each message in the output file, in file
// order, checking that every line is a valid RFC 5424 message with a
// well-formed payload.
func (r *rsyslog) received(format Format) ([]uint64, error) {
	f, err := os.Open(r.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var seqs []uint64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m, err := parse5424(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", len(seqs)+1, sc.Bytes(), err)
		}
		seq, err := strconv.ParseUint(m.SD[SDID]["seq"], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: seq: %w", len(seqs)+1, err)
		}
		if err := checkPayload(format, m.Msg, m.SD[SDID]["hash"]); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(seqs)+1, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs, sc.Err()
}

// waitFor polls the output file until cond holds for the seqs received.
func (r *rsyslog) waitFor(format Format, what string, cond func([]uint64) bool) []uint64 {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		seqs, err := r.received(format)
		if err != nil {
			r.t.Fatal(err)
		}
		if cond(seqs) {
			return seqs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("waiting for %s: received %d messages: %v", what, len(seqs), tail(seqs))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func tail(s []uint64) []uint64 { return s[max(0, len(s)-20):] }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the files and a pool that trusts it.
func selfSigned(t testing.TB) (*tlsFiles, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "auditlog test collector"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tf := &tlsFiles{ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{tf.ca: certPEM, tf.cert: certPEM,
		tf.key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tf, pool
}

// runShipper runs a shipper until the test ends; stop ends it early.
func runShipper(t testing.TB, cfg Config, r Reader, c Cursor) (s *Shipper, stop func()) {
	t.Helper()
	s, err := NewShipper(cfg, r, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return s, stop
}

// inOrderOnce reports whether seqs is exactly 1..n.
func inOrderOnce(seqs []uint64, n int) bool {
	if len(seqs) != n {
		return false
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			return false
		}
	}
	return true
}

// allOf reports whether every seq 1..n is in seqs (duplicates allowed),
// and returns the number of duplicates.
func allOf(seqs []uint64, n int) (bool, int) {
	seen := map[uint64]int{}
	for _, s := range seqs {
		seen[s]++
	}
	dups := 0
	for s, c := range seen {
		if s >= 1 && s <= uint64(n) {
			dups += c - 1
		}
	}
	for i := 1; i <= n; i++ {
		if seen[uint64(i)] == 0 {
			return false, dups
		}
	}
	return true, dups
}

func loadCursor(t testing.TB, c *FileCursor) uint64 {
	t.Helper()
	seq, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func testConfig(addr string, format Format) Config {
	return Config{Addr: addr, Format: format, Batch: 32, Retry: 20 * time.Millisecond, MaxRetry: 200 * time.Millisecond,
		DialTimeout: 2 * time.Second, WriteTimeout: 5 * time.Second,
		Source: Source{Facility: "Test Hospital", NodeID: "12D3KooTestNode", Host: "pacs.test", AppName: "pacsnet"}}
}

func hasRsyslogModule(name string) bool {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/rsyslog", "/usr/lib/aarch64-linux-gnu/rsyslog", "/usr/lib/rsyslog"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}
