package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/crypto"
)

// validConfig is DefaultConfig with the two fields init fills in.
func validConfig() Config {
	c := DefaultConfig()
	c.Name = "St Mary"
	c.AETitle = "STMARY"
	return c
}

func TestDefaultConfigValidates(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig with a name and AE title: %v", err)
	}
	// The defaults documented in docs/architecture.md (Configuration).
	d := DefaultConfig()
	if d.Version != ConfigVersion || d.HTTPAddr != "127.0.0.1:7480" || d.DICOMAddr != "127.0.0.1:11112" ||
		d.Archive.MaxInstanceSize != 1<<30 || d.Exchange.UploadRate != 0 ||
		d.Exchange.DefaultGrantTTL.Duration != 72*time.Hour || d.Exchange.FetchRetryFor.Duration != 5*time.Minute ||
		len(d.P2PAddrs) != 2 || d.Archive.MinFree != 2<<30 || d.HTTP.MaxConns != 1024 || d.HTTP.MaxUnauthenticatedConns != 64 ||
		d.HTTP.HeaderTimeout.Duration != 10*time.Second || d.HTTP.IOTimeout.Duration != time.Minute || d.HTTP.IdleTimeout.Duration != 2*time.Minute {
		t.Errorf("defaults differ from the documented ones: %+v", d)
	}
	// Without a name (which only init knows) the default is not valid.
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("DefaultConfig without a name: %v, want an error naming the name", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"version", func(c *Config) { c.Version = 2 }},
		{"version", func(c *Config) { c.Version = -1 }},
		{"name", func(c *Config) { c.Name = "  " }},
		{"name", func(c *Config) { c.Name = strings.Repeat("x", 65) }},
		{"name", func(c *Config) { c.Name = "St Mary\x1b[2J" }},
		{"name", func(c *Config) { c.Name = "St\nMary" }},
		{"archive.ingest_buffer", func(c *Config) { c.Archive.IngestBuffer = 1024 }},
		{"archive.max_concurrent_ingests", func(c *Config) { c.Archive.MaxConcurrentIngests = 0 }},
		{"archive.min_free", func(c *Config) { c.Archive.MinFree = -1 }},
		{"http.max_conns", func(c *Config) { c.HTTP.MaxConns = 1 }},
		{"http.max_unauthenticated_conns", func(c *Config) { c.HTTP.MaxUnauthenticatedConns = 0 }},
		{"http.max_unauthenticated_conns", func(c *Config) { c.HTTP.MaxUnauthenticatedConns = c.HTTP.MaxConns }},
		{"http.header_timeout", func(c *Config) { c.HTTP.HeaderTimeout.Duration = 0 }},
		{"http.io_timeout", func(c *Config) { c.HTTP.IOTimeout.Duration = -time.Second }},
		{"ae_title", func(c *Config) { c.AETitle = "" }},
		{"ae_title", func(c *Config) { c.AETitle = strings.Repeat("A", 17) }},
		{"ae_title", func(c *Config) { c.AETitle = `BACK\SLASH` }},
		{"ae_title", func(c *Config) { c.AETitle = "CAFÉ" }},
		{"ae_title", func(c *Config) { c.AETitle = "    " }},
		{"http_addr", func(c *Config) { c.HTTPAddr = "" }},
		{"http_addr", func(c *Config) { c.HTTPAddr = "127.0.0.1" }},
		{"http_addr", func(c *Config) { c.HTTPAddr = "not an address" }},
		{"p2p_addrs", func(c *Config) { c.P2PAddrs = nil }},
		{"p2p_addrs", func(c *Config) { c.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/4801", "tcp://127.0.0.1:4801"} }},
		{"archive.max_instance_size", func(c *Config) { c.Archive.MaxInstanceSize = 0 }},
		{"archive.max_instance_size", func(c *Config) { c.Archive.MaxInstanceSize = -1 }},
		{"exchange.upload_rate", func(c *Config) { c.Exchange.UploadRate = -1 }},
		{"exchange.default_grant_ttl", func(c *Config) { c.Exchange.DefaultGrantTTL = Duration{} }},
		{"exchange.default_grant_ttl", func(c *Config) { c.Exchange.DefaultGrantTTL = Duration{-time.Hour} }},
		{"exchange.fetch_retry_for", func(c *Config) { c.Exchange.FetchRetryFor = Duration{-time.Second} }},
		{"dicom.forward_to", func(c *Config) { c.DICOM.ForwardTo = `BACK\SLASH` }},
		{"dicom.forward_to", func(c *Config) { c.DICOM.ForwardTo = strings.Repeat("A", 17) }},
		{"dicom.forward_to", func(c *Config) { c.DICOM.ForwardTo = " PACS" }},
		{"users.token_ttl", func(c *Config) { c.Users.TokenTTL = Duration{} }},
		{"users.max_token_ttl", func(c *Config) { c.Users.MaxTokenTTL = Duration{time.Hour} }},
		{"users.session_idle", func(c *Config) { c.Users.SessionIdle = Duration{} }},
		{"users.session_max", func(c *Config) { c.Users.SessionMax = Duration{time.Minute} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := validConfig()
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestValidateAcceptsValidValues(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"localhost":             func(c *Config) { c.HTTPAddr = "localhost:7480" },
		"ipv6":                  func(c *Config) { c.HTTPAddr = "[::1]:7480" },
		"port 0":                func(c *Config) { c.HTTPAddr = "127.0.0.1:0" },
		"quic only":             func(c *Config) { c.P2PAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} },
		"ae of 16":              func(c *Config) { c.AETitle = strings.Repeat("A", 16) },
		"fetch retry 0":         func(c *Config) { c.Exchange.FetchRetryFor = Duration{} },
		"upload rate":           func(c *Config) { c.Exchange.UploadRate = 1 << 20 },
		"tiny instance size":    func(c *Config) { c.Archive.MaxInstanceSize = 1 },
		"name of 64 characters": func(c *Config) { c.Name = strings.Repeat("n", 64) },
		"forward_to":            func(c *Config) { c.DICOM.ForwardTo = "PACS" },
	} {
		t.Run(name, func(t *testing.T) {
			c := validConfig()
			mod(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// Config.HTTPAddr is documented as "127.0.0.1:7480; ":0" picks a free
// port" (config.go), but Validate requires a literal IP address (or
// "localhost:"), so the documented ":0" is refused.
func TestValidateAcceptsDocumentedHTTPAddrPortOnly(t *testing.T) {
	c := validConfig()
	c.HTTPAddr = ":0"
	if err := c.Validate(); err != nil {
		t.Errorf("http_addr %q is documented as valid (\":0\" picks a free port), Validate says: %v", c.HTTPAddr, err)
	}
}

func TestLoadConfig(t *testing.T) {
	home := t.TempDir()
	cfg, err := Init(home, InitOptions{Name: "St Mary's Hospital"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AETitle != "STMARYSHOSPITAL" {
		t.Errorf("AE title derived from the name: %q", cfg.AETitle)
	}
	got, err := LoadConfig(home)
	if err != nil {
		t.Fatalf("load the config init wrote: %v", err)
	}
	if got.Name != cfg.Name || got.AETitle != cfg.AETitle || got.Exchange.DefaultGrantTTL != cfg.Exchange.DefaultGrantTTL ||
		got.Archive.MaxInstanceSize != cfg.Archive.MaxInstanceSize || strings.Join(got.P2PAddrs, ",") != strings.Join(cfg.P2PAddrs, ",") {
		t.Errorf("round trip: wrote %+v, read %+v", cfg, got)
	}

	path := filepath.Join(home, "config.toml")
	for _, tc := range []struct {
		name, toml, wantErr string
	}{
		{"unknown top-level key", "version = 1\nname = \"X\"\nae_title = \"X\"\ncolour = \"blue\"\n", `unknown key "colour"`},
		{"unknown nested key", "version = 1\nname = \"X\"\nae_title = \"X\"\n[archive]\nmax_size = 5\n", `unknown key "archive.max_size"`},
		{"misspelt section", "version = 1\nname = \"X\"\nae_title = \"X\"\n[exchang]\nupload_rate = 5\n", "unknown key"},
		{"newer version", "version = 2\nname = \"X\"\nae_title = \"X\"\n", "version 2"},
		{"bad duration", "version = 1\nname = \"X\"\nae_title = \"X\"\n[exchange]\ndefault_grant_ttl = \"three days\"\n", "parse config"},
		{"invalid value", "version = 1\nname = \"X\"\nae_title = \"X\"\n[exchange]\nupload_rate = -5\n", "exchange.upload_rate"},
		{"not toml", "this is = = not toml", "parse config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tc.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(home)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LoadConfig: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}

	t.Run("absent keys take defaults", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("name = \"Hand Written\"\nae_title = \"HW\"\n[exchange]\nupload_rate = 1000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		d := DefaultConfig()
		if c.Version != ConfigVersion || c.Exchange.UploadRate != 1000 || c.Exchange.FetchRetryFor != d.Exchange.FetchRetryFor ||
			c.HTTPAddr != d.HTTPAddr || c.Archive.MaxInstanceSize != d.Archive.MaxInstanceSize {
			t.Errorf("got %+v", c)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadConfig(t.TempDir()); err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LoadConfig of an empty directory: %v", err)
		}
	})
}

// Facilities initialised one after the other in one folder, before any
// of them serves (the README's "Two hospitals by hand" in another order),
// get distinct default ports: init skips the ports its neighbours' configs
// name, not only the ports in use. A neighbour whose config cannot be
// parsed is ignored.
func TestInitPicksPortsApartFromNeighbours(t *testing.T) {
	parent := t.TempDir()
	if err := os.MkdirAll(filepath.Join(parent, "broken"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "broken", "config.toml"), []byte("http_addr = [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, name := range []string{"St Mary", "Riverside", "Northgate"} {
		home := filepath.Join(parent, strings.ToLower(strings.ReplaceAll(name, " ", "")))
		c, err := Init(home, InitOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.HTTPAddr != c.HTTPAddr || loaded.DICOMAddr != c.DICOMAddr || strings.Join(loaded.P2PAddrs, " ") != strings.Join(c.P2PAddrs, " ") {
			t.Errorf("%s: config.toml holds %s %s %v, init returned %s %s %v", name, loaded.HTTPAddr, loaded.DICOMAddr, loaded.P2PAddrs, c.HTTPAddr, c.DICOMAddr, c.P2PAddrs)
		}
		_, http, _ := strings.Cut(c.HTTPAddr, ":")
		_, dicom, _ := strings.Cut(c.DICOMAddr, ":")
		p2p := strings.Split(c.P2PAddrs[0], "/")[4]
		for _, port := range []string{http, dicom, p2p} {
			if other, ok := seen[port]; ok {
				t.Errorf("%s got port %s, which %s has too", name, port, other)
			}
			seen[port] = name
		}
	}
}

func TestInitLayout(t *testing.T) {
	home := filepath.Join(t.TempDir(), "facility")
	if _, err := Init(home, InitOptions{Name: "Clinic", AETitle: "CLINIC_AE"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{home, filepath.Join(home, keysDir), filepath.Join(home, runDir)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(filepath.Join(home, keysDir))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{crypto.SignKeyFile: false, archiveKeyFile: false, apiTokenFile: false}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("keys/%s: mode %v, want a regular file 0600", e.Name(), fi.Mode())
		}
		want[e.Name()] = true
	}
	if len(entries) < 4 {
		t.Errorf("keys/ holds %d files, want node.key, age.key, archive.key, api.token", len(entries))
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("keys/%s missing", f)
		}
	}
	tok, err := ReadAPIToken(home)
	if err != nil || len(tok) != 64 {
		t.Errorf("api token: %q, %v", tok, err)
	}
	c, err := LoadConfig(home)
	if err != nil || c.AETitle != "CLINIC_AE" || c.Name != "Clinic" {
		t.Errorf("config: %+v, %v", c, err)
	}

	t.Run("refuses an existing home", func(t *testing.T) {
		before, _ := os.ReadFile(filepath.Join(home, keysDir, crypto.SignKeyFile))
		_, err := Init(home, InitOptions{Name: "Other"})
		if !errors.Is(err, ErrHomeExists) {
			t.Fatalf("second Init: %v, want ErrHomeExists", err)
		}
		after, _ := os.ReadFile(filepath.Join(home, keysDir, crypto.SignKeyFile))
		if string(before) != string(after) {
			t.Error("second Init changed the node key")
		}
		if c, _ := LoadConfig(home); c.Name != "Clinic" {
			t.Errorf("second Init changed the config: %+v", c)
		}
	})
	t.Run("refuses an invalid name before touching the disk", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "x")
		if _, err := Init(dir, InitOptions{Name: ""}); err == nil {
			t.Fatal("Init with an empty name succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Init with an invalid name created %s", dir)
		}
	})
}

func TestOpenRefusesReadableKeyFile(t *testing.T) {
	files, err := os.ReadDir(filepath.Join(initHome(t), keysDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f.Name(), func(t *testing.T) {
			home := initHome(t)
			path := filepath.Join(home, keysDir, f.Name())
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(home)
			if err != nil {
				t.Fatal(err)
			}
			cfg.HTTPAddr = "127.0.0.1:0"
			cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
			n, err := Open(home, cfg, Options{})
			if err == nil {
				n.Close()
				t.Fatalf("Open with %s mode 0644 succeeded", f.Name())
			}
			if !errors.Is(err, crypto.ErrInsecureKeyFile) || !strings.Contains(err.Error(), f.Name()) {
				t.Errorf("Open: %v, want ErrInsecureKeyFile naming %s", err, f.Name())
			}
			// Fixing the mode is enough: nothing was left half open.
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			n, err = Open(home, cfg, Options{})
			if err != nil {
				t.Fatalf("Open after chmod 0600: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenRefusesSecondOpen(t *testing.T) {
	a := newNode(t, "Alpha")
	cfg := a.cfg
	_, err := Open(a.home, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "another pacsnet process") {
		t.Errorf("second Open of a home in use: %v", err)
	}
}

func initHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: "Keys"}); err != nil {
		t.Fatal(err)
	}
	return home
}
