package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// DICOM TLS (PS3.15 B.12 Basic TLS Secure Transport Connection Profile,
// B.13 BCP 195 profiles): TLS 1.2 or later, forward-secret key exchange
// and AEAD ciphers only (the non-downgrading BCP 195 set; TLS 1.3's
// suites are all of that kind), a client certificate required when a
// client CA is configured.

// dicomTLSSuites are the TLS 1.2 suites offered and accepted: ECDHE with
// AES-GCM or ChaCha20-Poly1305. No CBC, no RSA key exchange, no 3DES/RC4.
var dicomTLSSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func dicomTLSBase() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: dicomTLSSuites}
}

// tlsPath resolves a configured file name against the home.
func (d *dicomEdge) tlsPath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(d.home, name)
}

// keyPair loads the node's certificate and key; the key file must be
// owned by this user and closed to group and others.
func (d *dicomEdge) keyPair() (tls.Certificate, error) {
	keyFile := d.tlsPath(d.cfg.TLSKey)
	fi, err := os.Stat(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("dicom tls_key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tls.Certificate{}, fmt.Errorf("dicom tls_key: %s is accessible by group or others (mode %04o); chmod 600 it", keyFile, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return tls.Certificate{}, fmt.Errorf("dicom tls_key: %s is owned by another user", keyFile)
	}
	cert, err := tls.LoadX509KeyPair(d.tlsPath(d.cfg.TLSCert), keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("dicom tls_cert/tls_key: %w", err)
	}
	return cert, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// serverTLS is the TLS listener's configuration.
func (d *dicomEdge) serverTLS() (*tls.Config, error) {
	cert, err := d.keyPair()
	if err != nil {
		return nil, err
	}
	cfg := dicomTLSBase()
	cfg.Certificates = []tls.Certificate{cert}
	if d.cfg.TLSClientCA != "" {
		pool, err := loadCAs(d.tlsPath(d.cfg.TLSClientCA))
		if err != nil {
			return nil, fmt.Errorf("dicom tls_client_ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// dialer is how the node reaches ae for an association it opens (sending,
// C-MOVE): plain TCP, or TLS for an AE marked tls, presenting the node's
// certificate and verifying the AE's against tls_ca (or the system roots)
// and its host name.
func (d *dicomEdge) dialer(ae AE) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if !ae.TLS {
		var nd net.Dialer
		return nd.DialContext, nil
	}
	cfg := dicomTLSBase()
	cfg.ServerName = ae.Host
	if d.cfg.TLSCert != "" {
		cert, err := d.keyPair()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if d.cfg.TLSCA != "" {
		pool, err := loadCAs(d.tlsPath(d.cfg.TLSCA))
		if err != nil {
			return nil, fmt.Errorf("dicom tls_ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	td := &tls.Dialer{Config: cfg}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := td.DialContext(ctx, network, addr)
		if err != nil {
			var ve *tls.CertificateVerificationError
			if errors.As(err, &ve) {
				return nil, fmt.Errorf("TLS to AE %s: its certificate is not trusted (dicom.tls_ca): %w", ae.Title, err)
			}
			return nil, err
		}
		return c, nil
	}, nil
}

// DICOMTLSAddr is the DICOM TLS listener's address ("" when there is
// none).
func (n *Node) DICOMTLSAddr() string {
	if n.dicom == nil {
		return ""
	}
	return n.dicom.TLSAddr()
}
