package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckHome refuses what others may change and names the fix; it warns
// about a home others may read (issue 6, #13).
func TestCheckHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if _, err := Init(home, InitOptions{Name: "St Mary"}); err != nil {
		t.Fatal(err)
	}
	if w, err := CheckHome(home); err != nil || len(w) != 0 {
		t.Fatalf("a fresh home: warnings %q, error %v", w, err)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
		want string // "" for a warning only
	}{
		{home, 0o770, "writable by group or others (mode 0770)"},
		{home, 0o702, "fix it with chmod 700 " + home},
		{filepath.Join(home, "config.toml"), 0o664, "fix it with chmod 600 " + filepath.Join(home, "config.toml")},
		{filepath.Join(home, runDir), 0o777, "run is writable by group or others"},
		{home, 0o750, ""},
		{home, 0o705, ""},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(tc.path, tc.mode)
		w, err := CheckHome(home)
		os.Chmod(tc.path, fi.Mode().Perm())
		switch {
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s mode %04o: error %v, want one containing %q", tc.path, tc.mode, err, tc.want)
		case tc.want == "" && (err != nil || len(w) != 1 || !strings.Contains(w[0], "readable by group or others") || !strings.Contains(w[0], "chmod 700")):
			t.Errorf("%s mode %04o: warnings %q, error %v; want one warning", tc.path, tc.mode, w, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	cfg := filepath.Join(home, "config.toml")
	if err := os.Chown(cfg, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := CheckHome(home); err == nil || !strings.Contains(err.Error(), "owned by uid 12345, not by the user running pacsnet (uid 0)") {
		t.Errorf("config owned by another user: %v", err)
	}
	if _, err := Open(home, loadTestConfig(t, home), Options{InMemory: true}); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("Open of a home with a config owned by another user: %v", err)
	}
}

func loadTestConfig(t *testing.T, home string) Config {
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.P2PAddrs = "127.0.0.1:0", []string{"/ip4/127.0.0.1/tcp/0"}
	return cfg
}
