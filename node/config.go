package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/internal/durable"
	"github.com/pacsnet/pacsnet/internal/wire"
)

// ConfigVersion is the version of the config file format this build writes.
// Load migrates older versions and refuses newer ones.
const ConfigVersion = 1

// Config is a facility node's configuration, kept in HOME/config.toml. Every
// field has a documented default (see DefaultConfig); flags in cmd/pacsnet
// map onto these fields and nowhere else.
type Config struct {
	// Version of the file format; see ConfigVersion.
	Version int `toml:"version"`

	// Name is the facility's display name, e.g. "St Mary". It travels in
	// invites and manifests.
	Name string `toml:"name"`

	// AETitle is the facility's DICOM Application Entity title, 1-16
	// characters of the default repertoire without backslash.
	AETitle string `toml:"ae_title"`

	// HTTPAddr is where the local API (and later DICOMweb and the web UI)
	// listens. Default 127.0.0.1:7480; ":0" picks a free port.
	HTTPAddr string `toml:"http_addr"`

	// P2PAddrs are the libp2p listen multiaddrs. Default TCP and QUIC on
	// 127.0.0.1 port 4801. Facilities that exchange data across networks
	// set a routable address here.
	P2PAddrs []string `toml:"p2p_addrs"`

	// DICOMAddr is where the DICOM listener (C-ECHO, C-STORE) accepts
	// associations. Default 127.0.0.1:11112; ":0" picks a free port.
	DICOMAddr string `toml:"dicom_addr"`

	// DICOM tunes the DICOM listener and lists known application entities.
	DICOM DICOMConfig `toml:"dicom"`

	// Archive tunes the Badger archive.
	Archive ArchiveConfig `toml:"archive"`

	// Exchange tunes transfers with partner facilities.
	Exchange ExchangeConfig `toml:"exchange"`

	// HTTP bounds the local API's connections and their timeouts.
	HTTP HTTPConfig `toml:"http"`

	// Users bounds local users' credentials: API token lifetimes and web
	// sessions (users.go).
	Users UsersConfig `toml:"users"`

	// Audit sets how the audit trail is sealed and shipped (audit.go).
	Audit AuditConfig `toml:"audit"`

	// Requests sets the policy for partners' access requests
	// (requests.go).
	Requests RequestsConfig `toml:"requests"`

	// MemoryLimit is a soft limit on the memory `pacsnet serve`'s Go
	// runtime manages (heap and stacks; not the pages of the archive's
	// memory-mapped files): as the node nears it, the garbage collector
	// runs more often, so that garbage does not double the resident set
	// (a fetch or a C-STORE allocates and drops a block a millisecond).
	// It is not a cap: a node that needs more uses more. 0 leaves Go's
	// default, or the GOMEMLIMIT environment variable, which wins when
	// set. Default 80MiB (docs/performance.md, fetch memory).
	MemoryLimit Size `toml:"memory_limit"`
}

// HTTPConfig bounds the local API's connections so that no local user
// can take it away from its admin by holding connections open
// (docs/threat-model.md, docs/operations.md).
type HTTPConfig struct {
	// MaxConns bounds the API's open connections. Default 1024.
	MaxConns int `toml:"max_conns"`

	// MaxUnauthenticatedConns bounds the connections that have not yet
	// carried a request with a valid token (admin, API or session); beyond it the oldest (idle
	// first) is closed for each new one. Default 64.
	MaxUnauthenticatedConns int `toml:"max_unauthenticated_conns"`

	// HeaderTimeout is how long a connection may take to send a
	// request's headers. Default 10s.
	HeaderTimeout Duration `toml:"header_timeout"`

	// IOTimeout is the longest pause allowed while a request body
	// arrives or a response is sent (an import streams as long as its
	// bytes keep coming). Default 1m.
	IOTimeout Duration `toml:"io_timeout"`

	// IdleTimeout closes a connection idle this long between requests.
	// Default 2m.
	IdleTimeout Duration `toml:"idle_timeout"`

	// CORSOrigins are the web origins (scheme://host[:port]) whose pages
	// may call DICOMweb (/dicom-web) from a browser, e.g. a viewer served
	// elsewhere. Default none: only same-origin pages and non-browser
	// clients.
	CORSOrigins []string `toml:"cors_origins"`
}

// ArchiveConfig tunes the encrypted archive.
type ArchiveConfig struct {
	// MaxInstanceSize is the largest DICOM instance accepted, in bytes.
	// Default 1 GiB.
	MaxInstanceSize int64 `toml:"max_instance_size"`

	// IngestBuffer is the memory one arriving instance may hold at once,
	// in bytes, whatever its size: the DICOM validator's window (the
	// ciphertext is written as it is made; this much of it goes between
	// free-space checks). An instance costs about three times this at
	// most. Default 4 MiB; at least 64 KiB.
	IngestBuffer int64 `toml:"ingest_buffer"`

	// MaxConcurrentIngests bounds the instances being ingested at once,
	// server-wide (imports now; C-STORE and STOW-RS later); more wait for
	// a slot. Default 8.
	MaxConcurrentIngests int `toml:"max_concurrent_ingests"`

	// MinFree is the free space the archive's file system must keep: an
	// import or a fetch that would start or continue with less is refused
	// ("disk full", HTTP 507), and below a quarter of it every write is
	// (grants, outbox, audit), because Badger crashes (SIGBUS) rather than
	// fails when it runs out of space in its memory-mapped files. A node
	// started with less than a quarter of it free opens the archive
	// read-only. A size in bytes or with a unit ("2GiB", "512MiB"); 0
	// turns the guard off. Default 2GiB: one instance of the largest size
	// (archive.max_instance_size, 1 GiB) plus about 1 GiB for Badger's own
	// writes (a 256 MiB value-log file being filled or rewritten by GC, a
	// 64 MiB memtable's log and its flush, and an L0 compaction); raise it
	// with max_instance_size. docs/operations.md (Disk) explains it.
	MinFree Size `toml:"min_free"`
}

// Size is a byte count that reads "2GiB", "512MiB", "64KiB" or a plain
// number of bytes in TOML, and writes the shortest exact form.
type Size int64

var sizeUnits = []struct {
	name string
	mult int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseSize reads a byte count: digits, optionally followed by B, KiB,
// MiB, GiB or TiB (a space between is allowed).
func ParseSize(text string) (int64, error) {
	t := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.name)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want bytes, or a number with B, KiB, MiB, GiB or TiB", text)
	}
	return n * mult, nil
}

// ExchangeConfig tunes transfers with partner facilities.
type ExchangeConfig struct {
	// UploadRate caps the bytes per second this node serves to all peers
	// together; 0 means unlimited. Useful on a shared hospital WAN link.
	UploadRate int64 `toml:"upload_rate"`

	// DefaultGrantTTL is how long a grant lasts when the admin gives no
	// expiry. Default 72h.
	DefaultGrantTTL Duration `toml:"default_grant_ttl"`

	// MaxGrantTTL is the longest a grant may last. Default 720h (30 days).
	MaxGrantTTL Duration `toml:"max_grant_ttl"`

	// FetchRetryFor is how long a fetch keeps retrying an unreachable
	// holder before it fails (blocks already received are kept, so a new
	// fetch resumes). Default 5m.
	FetchRetryFor Duration `toml:"fetch_retry_for"`

	// FarewellTimeout bounds how long removing a partner waits to deliver
	// it the revocations of its grants before cutting it off. Default 10s.
	FarewellTimeout Duration `toml:"farewell_timeout"`

	// PeerRequestRate is how many manifest requests (pulls and pushes) per
	// second one partner may make, with bursts of PeerRequestBurst; more
	// are answered "unavailable, retry later" and audited as one
	// aggregated entry a minute. Default 5/s, bursts of 50: a partner's
	// outbox after an outage delivers a few dozen manifests at once.
	PeerRequestRate  float64 `toml:"peer_request_rate"`
	PeerRequestBurst int     `toml:"peer_request_burst"`

	// PeerBlockRate is how many block requests per second one partner may
	// make, with bursts of PeerBlockBurst. Default 20,000/s, bursts of
	// 40,000: well above a fetch of small instances at line rate (a block
	// is at most 1 MiB; 10,000 30 KB ultrasound frames at 300 MB/s is
	// 10,000 blocks a second), well below what a flood sends.
	PeerBlockRate  float64 `toml:"peer_block_rate"`
	PeerBlockBurst int     `toml:"peer_block_burst"`

	// ServeAsSecondary lets this facility serve the studies it fetched
	// from a partner (under a grant naming no user) to that partner's
	// other grantees of the study, who present the partner's signed grant,
	// and announce to the partner that it holds them, so that the partner
	// lists it to those grantees. Default false: serving as a secondary
	// tells other facilities that this one holds the study (and so had
	// the patient in its care) and spends its uplink on their fetches,
	// which is each facility's own decision to make (docs/threat-model.md).
	ServeAsSecondary bool `toml:"serve_as_secondary"`
}

// Duration is a time.Duration that reads and writes as "72h" in TOML.
type Duration struct{ time.Duration }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// DefaultConfig returns the configuration a new home starts with.
func DefaultConfig() Config {
	return Config{
		Version:     ConfigVersion,
		HTTPAddr:    "127.0.0.1:7480",
		P2PAddrs:    []string{"/ip4/127.0.0.1/tcp/4801", "/ip4/127.0.0.1/udp/4801/quic-v1"},
		DICOMAddr:   "127.0.0.1:11112",
		DICOM:       DICOMConfig{MaxAssociations: 32, MaxAssociationsPerAE: 8, MaxPDU: 1 << 20, IdleTimeout: Duration{5 * time.Minute}, ARTIMTimeout: Duration{30 * time.Second}},
		Archive:     ArchiveConfig{MaxInstanceSize: 1 << 30, IngestBuffer: 4 << 20, MaxConcurrentIngests: 8, MinFree: 2 << 30},
		MemoryLimit: 80 << 20,
		Exchange: ExchangeConfig{
			DefaultGrantTTL: Duration{72 * time.Hour},
			MaxGrantTTL:     Duration{30 * 24 * time.Hour},
			FetchRetryFor:   Duration{5 * time.Minute},
			FarewellTimeout: Duration{10 * time.Second},

			PeerRequestRate: 5, PeerRequestBurst: 50,
			PeerBlockRate: 20000, PeerBlockBurst: 40000,
		},
		HTTP: HTTPConfig{MaxConns: 1024, MaxUnauthenticatedConns: 64, HeaderTimeout: Duration{10 * time.Second},
			IOTimeout: Duration{time.Minute}, IdleTimeout: Duration{2 * time.Minute}},
		Users:    defaultUsersConfig(),
		Audit:    defaultAuditConfig(),
		Requests: defaultRequestsConfig(),
	}
}

// Validate reports the first problem with c, naming the field.
func (c *Config) Validate() error {
	if c.Version != ConfigVersion {
		return fmt.Errorf("config: version %d is not supported (this build reads %d)", c.Version, ConfigVersion)
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 64 {
		return errors.New("config: name must be 1-64 characters")
	}
	if !wire.PrintableName(c.Name) {
		return errors.New("config: name must not hold control characters")
	}
	if err := validateAE(c.AETitle); err != nil {
		return fmt.Errorf("config: ae_title: %w", err)
	}
	if host, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || !validPort(port) ||
		(host != "" && host != "localhost" && !validIP(host)) {
		return fmt.Errorf("config: http_addr %q: want host:port", c.HTTPAddr)
	}
	if host, port, err := net.SplitHostPort(c.DICOMAddr); err != nil || !validPort(port) ||
		(host != "" && host != "localhost" && !validIP(host)) {
		return fmt.Errorf("config: dicom_addr %q: want host:port", c.DICOMAddr)
	}
	if err := c.DICOM.validate(); err != nil {
		return err
	}
	for _, o := range c.HTTP.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return fmt.Errorf("config: http.cors_origins %q: want an origin, scheme://host[:port] (no \"*\", no path)", o)
		}
	}
	if len(c.P2PAddrs) == 0 {
		return errors.New("config: p2p_addrs must name at least one address")
	}
	for _, a := range c.P2PAddrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return fmt.Errorf("config: p2p_addrs %q: %w", a, err)
		}
	}
	if c.Archive.MaxInstanceSize <= 0 {
		return errors.New("config: archive.max_instance_size must be positive")
	}
	if c.Archive.IngestBuffer < 64<<10 || c.Archive.IngestBuffer > 1<<30 {
		return errors.New("config: archive.ingest_buffer must be 64 KiB to 1 GiB")
	}
	if c.Archive.MaxConcurrentIngests < 1 || c.Archive.MaxConcurrentIngests > 1024 {
		return errors.New("config: archive.max_concurrent_ingests must be 1-1024")
	}
	if c.MemoryLimit < 0 {
		return errors.New("memory_limit must not be negative")
	}
	if c.Archive.MinFree < 0 {
		return errors.New("config: archive.min_free must not be negative")
	}
	if c.Exchange.UploadRate < 0 {
		return errors.New("config: exchange.upload_rate must not be negative")
	}
	if c.Exchange.DefaultGrantTTL.Duration <= 0 {
		return errors.New("config: exchange.default_grant_ttl must be positive")
	}
	if c.Exchange.MaxGrantTTL.Duration < c.Exchange.DefaultGrantTTL.Duration {
		return errors.New("config: exchange.max_grant_ttl must be at least exchange.default_grant_ttl")
	}
	if c.Exchange.PeerRequestRate <= 0 || c.Exchange.PeerRequestBurst < 1 ||
		c.Exchange.PeerBlockRate <= 0 || c.Exchange.PeerBlockBurst < 1 {
		return errors.New("config: exchange.peer_request_rate, peer_block_rate must be positive and their bursts at least 1")
	}
	if c.Exchange.FarewellTimeout.Duration < 0 {
		return errors.New("config: exchange.farewell_timeout must not be negative")
	}
	if c.Exchange.FetchRetryFor.Duration < 0 {
		return errors.New("config: exchange.fetch_retry_for must not be negative")
	}
	if c.HTTP.MaxConns < 2 || c.HTTP.MaxConns > 1<<20 {
		return errors.New("config: http.max_conns must be 2 to 1048576")
	}
	if c.HTTP.MaxUnauthenticatedConns < 1 || c.HTTP.MaxUnauthenticatedConns >= c.HTTP.MaxConns {
		return errors.New("config: http.max_unauthenticated_conns must be at least 1 and less than http.max_conns")
	}
	if c.HTTP.HeaderTimeout.Duration <= 0 || c.HTTP.IOTimeout.Duration <= 0 || c.HTTP.IdleTimeout.Duration <= 0 {
		return errors.New("config: http.header_timeout, http.io_timeout and http.idle_timeout must be positive")
	}
	if err := c.Users.validate(); err != nil {
		return err
	}
	if err := c.Requests.validate(); err != nil {
		return err
	}
	return c.Audit.validate()
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func validIP(h string) bool {
	_, err := netip.ParseAddr(h)
	return err == nil
}

func validateAE(ae string) error {
	if ae == "" || len(ae) > 16 {
		return errors.New("must be 1-16 characters")
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("%q has a character outside the DICOM default repertoire", ae)
		}
	}
	if strings.TrimSpace(ae) == "" {
		return errors.New("must not be blank")
	}
	return nil
}

// aeFromName derives a default AE title from a facility name: upper case
// letters and digits, at most 16.
func aeFromName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
		if b.Len() == 16 {
			break
		}
	}
	if b.Len() == 0 {
		return "PACSNET"
	}
	return b.String()
}

const configHeader = `# pacsnet facility node configuration.
# Every key is documented in docs/architecture.md (Configuration); a key
# left out takes its default. Addresses default to 127.0.0.1: set routable
# addresses here to exchange with facilities on other machines.
`

// noHomeError: the home has no config file. It is an os.ErrNotExist.
type noHomeError struct{ home string }

func (e noHomeError) Error() string {
	return "no pacsnet home at " + e.home + " (create one with `pacsnet init --name NAME`, or name another with --home)"
}

func (e noHomeError) Unwrap() error { return os.ErrNotExist }

// LoadConfig reads HOME/config.toml, fills defaults for absent keys and
// validates it.
func LoadConfig(home string) (Config, error) {
	c := DefaultConfig()
	b, err := os.ReadFile(filepath.Join(home, "config.toml"))
	if errors.Is(err, os.ErrNotExist) {
		return c, noHomeError{home}
	}
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return c, fmt.Errorf("parse config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return c, fmt.Errorf("parse config: unknown key %q", und[0].String())
	}
	if c.Version == 0 {
		c.Version = ConfigVersion // version 0 is a hand-written file without a version line
	}
	return c, c.Validate()
}

func writeConfig(home string, c Config) error {
	var b strings.Builder
	b.WriteString(configHeader)
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	return durable.WriteFile(filepath.Join(home, "config.toml"), []byte(b.String()), 0o644)
}
