package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/dimse"
)

// testPKI is a CA and the certificates it issued, as PEM files in dir.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pacsnet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey, p.serial = key, 1
	p.write(t, "ca.crt", "CERTIFICATE", der, 0o644)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes name.crt and name.key (0600) for a server on 127.0.0.1 and
// localhost, also usable as a client certificate.
func (p *testPKI) issue(t *testing.T, name string) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return p.write(t, name+".crt", "CERTIFICATE", der, 0o644), p.write(t, name+".key", "PRIVATE KEY", kder, 0o600)
}

func tlsNode(t *testing.T, pki *testPKI, clientCA bool) *tnode {
	t.Helper()
	cert, key := pki.issue(t, "node")
	return newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "MODALITY", Host: "127.0.0.1", Port: 104}}
		c.DICOM.TLSAddr, c.DICOM.TLSCert, c.DICOM.TLSKey = "127.0.0.1:0", cert, key
		if clientCA {
			c.DICOM.TLSClientCA = filepath.Join(pki.dir, "ca.crt")
		}
	}})
}

// DCMTK's echoscu and storescu reach the node's TLS listener with a
// client certificate the configured CA issued (PS3.15 B.12/B.13); the
// plain listener is unaffected.
func TestDICOMTLSWithDCMTK(t *testing.T) {
	needTool(t, "echoscu", "storescu")
	pki := newTestPKI(t)
	n := tlsNode(t, pki, true)
	if n.DICOMTLSAddr() == "" {
		t.Fatal("no TLS listener")
	}
	ccert, ckey := pki.issue(t, "modality")
	host, port := splitAddr(t, n.DICOMTLSAddr())
	tlsArgs := []string{"+tls", ckey, ccert, "+cf", filepath.Join(pki.dir, "ca.crt")}
	args := append(append([]string{"-aet", "MODALITY", "-aec", n.cfg.AETitle}, tlsArgs...), host, port)
	if out, err := exec.Command("echoscu", args...).CombinedOutput(); err != nil {
		t.Fatalf("echoscu +tls: %v\n%s", err, out)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "ct.dcm")
	study, files := ctStudy(t, 31, 1, "")
	os.WriteFile(f, files[0].Data, 0o600)
	if out, err := exec.Command("storescu", append(args, f)...).CombinedOutput(); err != nil {
		t.Fatalf("storescu +tls: %v\n%s", err, out)
	}
	if insts, _ := n.Instances(study); len(insts) != 1 {
		t.Fatalf("%d instances stored over TLS", len(insts))
	}
	// A certificate from another CA is refused; so is plain DICOM on the
	// TLS port.
	other := newTestPKI(t)
	ocert, okey := other.issue(t, "stranger")
	args2 := append(append([]string{"-aet", "MODALITY", "-aec", n.cfg.AETitle}, "+tls", okey, ocert, "-ic"), host, port)
	if out, err := exec.Command("echoscu", args2...).CombinedOutput(); err == nil {
		t.Fatalf("echoscu with a certificate of another CA: accepted\n%s", out)
	}
	if out, err := exec.Command("echoscu", "-to", "5", "-aet", "MODALITY", "-aec", n.cfg.AETitle, host, port).CombinedOutput(); err == nil {
		t.Fatalf("plain echoscu on the TLS port: accepted\n%s", out)
	}
	if out, err := echo(t, n, "MODALITY"); err != nil {
		t.Fatalf("plain echoscu on the plain port: %v\n%s", err, out)
	}
}

// The TLS listener speaks TLS 1.2 or later with AEAD suites only and, with
// a client CA, requires a client certificate.
func TestDICOMTLSPolicy(t *testing.T) {
	pki := newTestPKI(t)
	n := tlsNode(t, pki, true)
	roots := x509.NewCertPool()
	roots.AddCert(pki.ca)
	ccert, ckey := pki.issue(t, "ws")
	client, err := tls.LoadX509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	try := func(cfg *tls.Config) error {
		cfg.RootCAs, cfg.ServerName = roots, "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.DICOMTLSAddr(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 sends the server's verdict on the client certificate
		// after the handshake: a read shows it.
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		return err
	}
	if err := try(&tls.Config{Certificates: []tls.Certificate{client}}); err != nil {
		t.Fatalf("a good client: %v", err)
	}
	if err := try(&tls.Config{Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.1":               {Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10},
		"CBC suite only":        {Certificates: []tls.Certificate{client}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		"no client certificate": {},
	} {
		if err := try(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The node's own client side (sending, C-MOVE to an AE marked tls)
	// verifies the AE against tls_ca and reaches this listener.
	d := n.dicom
	d.cfg.TLSCA = filepath.Join(pki.dir, "ca.crt")
	host, port := splitAddr(t, n.DICOMTLSAddr())
	dial, err := d.dialer(AE{Title: "SELF", Host: host, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	rq := dimse.Requestor{CallingAE: "MODALITY", CalledAE: n.cfg.AETitle, Dialer: dial,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.Verification, TransferSyntaxes: []string{explicitLE}}}}
	a, err := rq.Dial(context.Background(), net.JoinHostPort(host, port))
	if err != nil {
		t.Fatalf("the node's TLS client: %v", err)
	}
	if err := dimse.Echo(context.Background(), a, 1); err != nil {
		t.Fatal(err)
	}
	a.Release()
	d.cfg.TLSCA = filepath.Join(newTestPKI(t).dir, "ca.crt")
	dial, _ = d.dialer(AE{Title: "SELF", Host: host, TLS: true})
	rq.Dialer = dial
	if _, err := rq.Dial(context.Background(), net.JoinHostPort(host, port)); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("an AE whose certificate tls_ca did not sign: %v", err)
	}
}

// A TLS key readable by others is refused at start, naming the fix.
func TestDICOMTLSKeyPermissions(t *testing.T) {
	pki := newTestPKI(t)
	cert, key := pki.issue(t, "node")
	os.Chmod(key, 0o644)
	cfg := DefaultConfig()
	cfg.DICOM.TLSAddr, cfg.DICOM.TLSCert, cfg.DICOM.TLSKey = "127.0.0.1:0", cert, key
	d := &dicomEdge{cfg: cfg.DICOM}
	if _, err := d.serverTLS(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("serverTLS with a 0644 key: %v", err)
	}
}

// The node's TLS client (for AEs marked tls) reaches DCMTK's storescp
// +tls, which requires its client certificate: C-ECHO, and a C-STORE
// that storescp writes with the exact data set.
func TestDICOMTLSClientToStorescp(t *testing.T) {
	needTool(t, "storescp")
	pki := newTestPKI(t)
	n := tlsNode(t, pki, false)
	n.dicom.cfg.TLSCA = filepath.Join(pki.dir, "ca.crt")
	scpCert, scpKey := pki.issue(t, "storescp")
	dir := t.TempDir()
	port := freeTCPPort(t)
	cmd := exec.Command("storescp", "-aet", "STORESCP", "-od", dir, "--accept-all",
		"+tls", scpKey, scpCert, "+cf", filepath.Join(pki.dir, "ca.crt"), port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	dial, err := n.dicom.dialer(AE{Title: "STORESCP", Host: "127.0.0.1", Port: mustAtoi(port), TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	rq := dimse.Requestor{CallingAE: n.cfg.AETitle, CalledAE: "STORESCP", Dialer: dial,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.Verification, TransferSyntaxes: []string{explicitLE}},
			{AbstractSyntax: ctStorage, TransferSyntaxes: []string{explicitLE}}}}
	var a *dimse.Assoc
	for range 50 { // storescp needs a moment to listen
		if a, err = rq.Dial(context.Background(), "127.0.0.1:"+port); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("TLS association with storescp: %v", err)
	}
	if err := dimse.Echo(context.Background(), a, 1); err != nil {
		t.Fatal(err)
	}
	_, files := ctStudy(t, 40, 1, "")
	ds, _, _, sop := splitPart10(files[0].Data, "")
	res, err := dimse.Store(context.Background(), a, a.ContextFor(ctStorage, explicitLE), 2, ctStorage, sop, bytes.NewReader(ds), "", 0)
	if err != nil || res.Status != dimse.StatusSuccess {
		t.Fatalf("C-STORE over TLS: %+v %v", res, err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	written, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(written) != 1 {
		t.Fatalf("storescp wrote %d files", len(written))
	}
	if b, _ := os.ReadFile(written[0]); !bytes.HasSuffix(b, ds) {
		t.Fatal("storescp's file does not end with the data set sent")
	}
}
