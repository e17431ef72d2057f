package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/auditlog"
)

// SyslogConfig streams the audit trail to a syslog collector (IHE ATNA,
// RFC 5424 over TCP, or TLS as RFC 5425 says), at least once, from a
// durable cursor: entries written while the collector is down are sent
// when it is back.
type SyslogConfig struct {
	// Addr is the collector's host:port; empty (the default) is off.
	Addr string `toml:"addr"`
	// Format is json (the entry as JSON in each message, default) or dicom
	// (the DICOM audit message, PS3.15 A.5, as ATNA collectors expect).
	Format string `toml:"format"`
	// TLS connects with TLS 1.2 or later (RFC 5425), checking the
	// collector's certificate against CA, or the system's roots.
	TLS bool `toml:"tls"`
	// CA is a PEM file of the certificates that may sign the collector's.
	CA string `toml:"ca"`
	// ServerName is the name the collector's certificate must carry, when
	// it is not Addr's host.
	ServerName string `toml:"server_name"`
}

func (c SyslogConfig) validate() error {
	if c.Addr == "" {
		if c.TLS || c.CA != "" || c.ServerName != "" {
			return errors.New("config: audit.syslog.tls, ca and server_name need audit.syslog.addr")
		}
		return nil
	}
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" || !validPort(port) || port == "0" {
		return fmt.Errorf("config: audit.syslog.addr %q: want host:port", c.Addr)
	}
	if _, err := auditlog.ParseFormat(c.Format); err != nil {
		return fmt.Errorf("config: audit.syslog.format %q: want json or dicom", c.Format)
	}
	if c.CA != "" && !c.TLS {
		return errors.New("config: audit.syslog.ca needs audit.syslog.tls = true")
	}
	return nil
}

// syslogCursorFile holds the seq of the last entry sent to the collector.
const syslogCursorFile = "audit-syslog.cursor"

// newAuditShipper builds the audit stream the config asks for (nil when
// off).
func newAuditShipper(home string, cfg SyslogConfig, n *Node) (*auditlog.Shipper, error) {
	if cfg.Addr == "" {
		return nil, nil
	}
	format, _ := auditlog.ParseFormat(cfg.Format)
	sc := auditlog.Config{Addr: cfg.Addr, Format: format}
	if cfg.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
		}
		if cfg.CA != "" {
			pem, err := os.ReadFile(cfg.CA)
			if err != nil {
				return nil, fmt.Errorf("audit.syslog.ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("audit.syslog.ca %s: no PEM certificate in it", cfg.CA)
			}
			tc.RootCAs = pool
		}
		sc.TLS = tc
	}
	host, _ := os.Hostname()
	sc.Source = auditlog.Source{Facility: n.cfg.Name, NodeID: n.keys.id.PeerID().String(), Host: host, AppName: "pacsnet"}
	return auditlog.NewShipper(sc, n.ledger, &auditlog.FileCursor{Path: filepath.Join(home, syslogCursorFile)}, n.log)
}

// shippingStatus is the audit stream's state for GET /api/v1/status.
func (n *Node) shippingStatus() *api.AuditShipping {
	if n.shipper == nil {
		return nil
	}
	st := n.shipper.Status()
	format := api.AuditFormatSyslog
	if f, _ := auditlog.ParseFormat(n.cfg.Audit.Syslog.Format); f == auditlog.FormatDICOM {
		format = api.AuditFormatSyslogDICOM
	}
	out := &api.AuditShipping{Addr: n.cfg.Audit.Syslog.Addr, Format: format, TLS: n.cfg.Audit.Syslog.TLS,
		Connected: st.Connected, Shipped: st.Shipped, Backlog: st.Backlog, LastError: st.LastError}
	if !st.LastSent.IsZero() {
		t := st.LastSent
		out.LastSent = &t
	}
	return out
}
