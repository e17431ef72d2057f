package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/BurntSushi/toml"
	multiaddr "github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/crypto"
)

// The layout of a node's home directory. docs/architecture.md describes it.
const (
	keysDir        = "keys"
	archiveDir     = "archive"
	runDir         = "run"
	archiveKeyFile = "archive.key" // Badger's AES key, age-encrypted to the node's own recipient
	apiTokenFile   = "api.token"   // bearer token of the local admin API
	apiInfoFile    = "api.json"    // written by serve: where the running node's API listens
)

// InitOptions are what `pacsnet init` asks for.
type InitOptions struct {
	Name    string
	AETitle string // derived from Name when empty
}

// Validate reports what is wrong with the options (a blank or long name,
// an invalid AE title) before anything is written.
func (o InitOptions) Validate() error {
	_, err := o.config()
	return err
}

func (o InitOptions) config() (Config, error) {
	cfg := DefaultConfig()
	cfg.Name = o.Name
	cfg.AETitle = o.AETitle
	if cfg.AETitle == "" {
		cfg.AETitle = aeFromName(o.Name)
	}
	return cfg, cfg.Validate()
}

// ErrHomeExists is returned by Init when the home already holds a node.
var ErrHomeExists = errors.New("home already initialised")

// Init creates a facility home: config file with defaults, node identity
// (libp2p Ed25519 key and age post-quantum hybrid identity), the wrapped
// archive key and an admin API token. Key files are written 0600 in a 0700
// directory. It refuses to touch a home that already has a config.
func Init(home string, opts InitOptions) (Config, error) {
	cfg, err := opts.config()
	if err != nil {
		return cfg, err
	}
	cfg.pickFreePorts(home)
	if _, err := os.Stat(filepath.Join(home, "config.toml")); err == nil {
		return cfg, fmt.Errorf("init %s: %w", home, ErrHomeExists)
	}
	if ents, err := os.ReadDir(home); err == nil && len(ents) > 0 {
		return cfg, fmt.Errorf("init %s: the directory exists and is not empty; choose a new or empty one", home)
	}
	for _, d := range []string{home, filepath.Join(home, keysDir), filepath.Join(home, runDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cfg, fmt.Errorf("init: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return cfg, fmt.Errorf("init: %w", err)
		}
	}
	kd := filepath.Join(home, keysDir)
	id, err := crypto.GenerateIdentity()
	if err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	if err := crypto.SaveIdentity(kd, id); err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	ak, err := crypto.NewArchiveKey()
	if err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	wrapped, err := crypto.Encrypt(ak, id.Recipient())
	if err != nil {
		return cfg, fmt.Errorf("init: wrap archive key: %w", err)
	}
	if err := crypto.WriteKeyFile(filepath.Join(kd, archiveKeyFile), wrapped); err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	if err := crypto.WriteKeyFile(filepath.Join(kd, apiTokenFile), []byte(hex.EncodeToString(tok)+"\n")); err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	if err := writeConfig(home, cfg); err != nil {
		return cfg, fmt.Errorf("init: %w", err)
	}
	return cfg, nil
}

// keys is what a running node loads from HOME/keys.
type keys struct {
	id         *crypto.Identity
	archiveKey []byte
	apiToken   string
}

func loadKeys(home string) (*keys, error) {
	kd := filepath.Join(home, keysDir)
	if fi, err := os.Stat(kd); err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load keys: %s is accessible by group or others (mode %04o); chmod 700 it: %w", kd, fi.Mode().Perm(), crypto.ErrInsecureKeyFile)
	}
	id, err := crypto.LoadIdentity(kd)
	if err != nil {
		return nil, err
	}
	wrapped, err := crypto.ReadKeyFile(filepath.Join(kd, archiveKeyFile))
	if err != nil {
		return nil, err
	}
	ak, err := crypto.Decrypt(wrapped, id.Box)
	if err != nil {
		return nil, fmt.Errorf("unwrap archive key: %w", err)
	}
	if len(ak) != 32 {
		return nil, fmt.Errorf("unwrap archive key: %d bytes, want 32", len(ak))
	}
	tok, err := ReadAPIToken(home)
	if err != nil {
		return nil, err
	}
	return &keys{id: id, archiveKey: ak, apiToken: tok}, nil
}

// ReadAPIToken reads the admin API token of the node at home; the CLI uses
// it to talk to the running node.
func ReadAPIToken(home string) (string, error) {
	b, err := crypto.ReadKeyFile(filepath.Join(home, keysDir, apiTokenFile))
	if err != nil {
		return "", err
	}
	tok := string(trimSpace(b))
	if len(tok) < 32 {
		return "", errors.New("read api token: token file is too short")
	}
	return tok, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// pickFreePorts moves the default loopback ports (API 7480, P2P 4801,
// DICOM 11112) to the first ones free on this machine at init, so that a
// second facility initialised next to a running one does not clash with
// it. Ports that another home beside this one (a folder of home's parent
// holding a config.toml) names are skipped too, so that facilities
// initialised one after the other before any of them serves get
// distinct ports. The ports are written to config.toml; an admin may
// change them.
func (c *Config) pickFreePorts(home string) {
	taken := siblingPorts(home)
	c.HTTPAddr = "127.0.0.1:" + strconv.Itoa(firstFreePort(7480, false, taken))
	p := firstFreePort(4801, true, taken)
	c.P2PAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p)}
	c.DICOMAddr = "127.0.0.1:" + strconv.Itoa(firstFreePort(11112, false, taken))
}

// maxSiblings bounds how many folders beside a new home init looks into
// for the ports their configs name.
const maxSiblings = 256

// siblingPorts returns the ports named by the http_addr, p2p_addrs and
// dicom_addr of the config.toml of every pacsnet home beside home (at most
// maxSiblings folders are looked at). A file that cannot be read or
// parsed, or that names no AE title and P2P address (another program's),
// names no ports: this only helps choose defaults.
func siblingPorts(home string) map[int]bool {
	taken := map[int]bool{}
	parent := filepath.Dir(filepath.Clean(home))
	ents, err := os.ReadDir(parent)
	if err != nil {
		return taken
	}
	self := filepath.Base(filepath.Clean(home))
	n := 0
	for _, e := range ents {
		if !e.IsDir() || e.Name() == self {
			continue
		}
		if n++; n > maxSiblings {
			break
		}
		b, err := os.ReadFile(filepath.Join(parent, e.Name(), "config.toml"))
		if err != nil || len(b) > 1<<20 {
			continue
		}
		var sc struct {
			AETitle   string   `toml:"ae_title"`
			HTTPAddr  string   `toml:"http_addr"`
			P2PAddrs  []string `toml:"p2p_addrs"`
			DICOMAddr string   `toml:"dicom_addr"`
		}
		if _, err := toml.Decode(string(b), &sc); err != nil || sc.AETitle == "" || len(sc.P2PAddrs) == 0 {
			continue // not a pacsnet home's config (another program's config.toml beside it)
		}
		for _, a := range []string{sc.HTTPAddr, sc.DICOMAddr} {
			if _, port, err := net.SplitHostPort(a); err == nil {
				if p, err := strconv.Atoi(port); err == nil {
					taken[p] = true
				}
			}
		}
		for _, a := range sc.P2PAddrs {
			if m, err := multiaddr.NewMultiaddr(a); err == nil {
				for _, proto := range []int{multiaddr.P_TCP, multiaddr.P_UDP} {
					if v, err := m.ValueForProtocol(proto); err == nil {
						if p, err := strconv.Atoi(v); err == nil {
							taken[p] = true
						}
					}
				}
			}
		}
	}
	return taken
}

// firstFreePort returns the first port from start on (at most 100 tried)
// that is not in taken and can be bound on 127.0.0.1 (TCP, and UDP too if
// udp), or start.
func firstFreePort(start int, udp bool, taken map[int]bool) int {
	for p := start; p < start+100; p++ {
		if taken[p] {
			continue
		}
		addr := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		if udp {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				continue
			}
			pc.Close()
		}
		return p
	}
	return start
}

// CheckHome checks who may change the home, its config.toml and run/
// before a node serves it: anyone who can write them can point the node,
// or the CLI and its admin token, elsewhere. It refuses (err) any of them
// writable by group or others or owned by another user than the one
// running the node, and warns (warnings, one sentence each) when the home
// is readable by group or others. Each message says how to fix it.
func CheckHome(home string) (warnings []string, err error) {
	uid := os.Geteuid()
	for _, c := range []struct {
		path string
		fix  string
	}{
		{home, "chmod 700 "},
		{filepath.Join(home, "config.toml"), "chmod 600 "},
		{filepath.Join(home, runDir), "chmod 700 "},
	} {
		fi, err := os.Stat(c.path)
		if errors.Is(err, fs.ErrNotExist) && c.path != home {
			continue // run/ is made when missing; a missing config is LoadConfig's to say
		}
		if err != nil {
			return warnings, fmt.Errorf("check home: %w", err)
		}
		if owner, ok := fileOwner(fi); ok && owner != uid {
			return warnings, fmt.Errorf("check home: %s is owned by uid %d, not by the user running pacsnet (uid %d): run pacsnet as the user that owns the home, or give it that user with chown -R", c.path, owner, uid)
		}
		if perm := fi.Mode().Perm(); perm&0o022 != 0 {
			return warnings, fmt.Errorf("check home: %s is writable by group or others (mode %04o), who could change where the node listens or where the CLI sends the admin token: fix it with %s%s", c.path, perm, c.fix, c.path)
		}
		if c.path == home && fi.Mode().Perm()&0o044 != 0 {
			warnings = append(warnings, fmt.Sprintf("the home %s is readable by group or others (mode %04o): they can see its configuration and what it holds; fix it with chmod 700 %s", home, fi.Mode().Perm(), home))
		}
	}
	return warnings, nil
}

// fileOwner is the uid that owns a file, where the system says.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
