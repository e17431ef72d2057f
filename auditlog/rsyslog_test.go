package auditlog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/pacsnet/pacsnet/internal/rsyslogtest"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// rsyslog is a real rsyslogd collector (internal/rsyslogtest).
type rsyslog struct {
	*rsyslogtest.Collector
	t testing.TB
}

type tlsFiles = rsyslogtest.TLSFiles

func newRsyslog(t testing.TB, tf *tlsFiles) *rsyslog { return &rsyslog{rsyslogtest.New(t, tf), t} }

func (r *rsyslog) addr() string { return r.Addr() }
func (r *rsyslog) start()       { r.Start() }
func (r *rsyslog) stop()        { r.Stop() }
func (r *rsyslog) kill()        { r.Kill() }

// received returns the seq of each message in the output file, in file
// order, checking that every line is a valid RFC 5424 message with a
// well-formed payload.
func (r *rsyslog) received(format Format) ([]uint64, error) {
	lines, err := r.Lines()
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, line := range lines {
		m, err := parse5424(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", len(seqs)+1, line, err)
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
	return seqs, nil
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
	tf := &tlsFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{tf.CA: certPEM, tf.Cert: certPEM,
		tf.Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})} {
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
