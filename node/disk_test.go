package node

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
)

func TestDiskSpace(t *testing.T) {
	free, total, err := diskSpace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || free > total {
		t.Fatalf("free %d of total %d", free, total)
	}
	if _, _, err := diskSpace("/does/not/exist"); err == nil {
		t.Fatal("no error for a missing folder")
	}
}

func TestSizeConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"2GiB", 2 << 30}, {"512 MiB", 512 << 20}, {"1048576", 1 << 20}, {"0", 0}, {"3B", 3}} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "-1", "2GB", "1.5GiB", "GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if s := Size(2 << 30).String(); s != "2GiB" {
		t.Errorf("Size(2GiB).String() = %q", s)
	}
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: "Sizes"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil || cfg.Archive.MinFree != 2<<30 {
		t.Fatalf("default min_free %v, %v", cfg.Archive.MinFree, err)
	}
	b, _ := os.ReadFile(filepath.Join(home, "config.toml"))
	if !strings.Contains(string(b), `min_free = "2GiB"`) {
		t.Fatalf("config.toml does not say min_free = \"2GiB\":\n%s", b)
	}
	os.WriteFile(filepath.Join(home, "config.toml"), []byte(strings.Replace(string(b), `min_free = "2GiB"`, `min_free = 1073741824`, 1)), 0o644)
	if cfg, err := LoadConfig(home); err != nil || cfg.Archive.MinFree != 1<<30 {
		t.Fatalf("min_free as bytes: %v, %v", cfg.Archive.MinFree, err)
	}
}

// fakeDisk is a statfs whose free space the test sets.
type fakeDisk struct{ free atomic.Uint64 }

func (d *fakeDisk) statfs(string) (uint64, uint64, error) { return d.free.Load(), 100 << 30, nil }

// newNodeOnDisk starts a node whose free-space guard sees disk.
func newNodeOnDisk(t *testing.T, name string, disk *fakeDisk) *tnode {
	t.Helper()
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	n, err := Open(home, cfg, Options{Logger: testLogger(t, name)})
	if err != nil {
		t.Fatal(err)
	}
	n.space.statfs = disk.statfs // before Start: the API's goroutines see it
	tn := &tnode{Node: n, t: t, name: name, home: home}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(tn.stop)
	return tn
}

// A nearly full disk refuses imports and fetches with 507 before the
// archive runs out (Badger dies of SIGBUS when it does); small writes go
// on down to a quarter of the margin; reads go on always.
func TestDiskFullRefusesBulkWrites(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(50 << 30)
	a := newNodeOnDisk(t, "Full", disk)
	b := newNode(t, "Partner")
	link(t, a, b)
	study, files := importCT(t, a, 1, 2)
	other, _ := importCT(t, b, 2, 2)
	grant(t, b, a, other)
	waitShared(t, a, b, other, SharedAvailable, 1, 20*time.Second)

	disk.free.Store(1 << 30) // below archive.min_free (2 GiB), above a quarter of it
	auth := "Bearer " + a.keys.apiToken
	status, body := apiRaw(t, a, http.MethodPost, "/api/v1/instances", auth, files[0].Data)
	if status != http.StatusInsufficientStorage || !strings.Contains(string(body), "disk full: 1.0 GiB free, 2.0 GiB required margin (archive.min_free)") ||
		!strings.Contains(string(body), `"code": "insufficient-storage"`) {
		t.Fatalf("import on a full disk: %d %s", status, body)
	}
	if _, err := a.StartFetch(context.Background(), FetchRequest{Study: other, Actor: "admin"}); !errors.As(err, new(*diskFullError)) {
		t.Fatalf("fetch on a full disk: %v", err)
	} else if errorCode(err) != api.CodeInsufficientStorage {
		t.Fatalf("fetch on a full disk answers %s", errorCode(err))
	}
	// Small writes (a grant and its audit entry) still go; reads too.
	grant(t, a, b, study)
	if status, body := apiRaw(t, a, http.MethodGet, "/api/v1/studies", auth, nil); status != http.StatusOK || !strings.Contains(string(body), study) {
		t.Fatalf("studies on a full disk: %d %s", status, body)
	}

	disk.free.Store(100 << 20) // below a quarter of the margin: every write is refused
	if _, err := a.Grant(context.Background(), GrantRequest{To: b.ID().String(), Study: study, Actor: "admin"}); errorCode(err) != api.CodeInsufficientStorage {
		t.Fatalf("grant below the floor: %v (%s)", err, errorCode(err))
	}
	disk.free.Store(50 << 30)
	if r := a.Import(context.Background(), files[0].Data); r.Outcome != OutcomeDuplicate {
		t.Fatalf("import once space is back: %+v", r)
	}
}

// mountTmpfs mounts a small tmpfs for the test (we run as root in CI);
// the test is skipped where mounting is not allowed.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipped: this test needs to mount a tmpfs (root): %v %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk fills dir's file system but for about leave bytes.
func fillDisk(t *testing.T, dir string, leave uint64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "fill"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		free, _, err := diskSpace(dir)
		if err != nil {
			t.Fatal(err)
		}
		if free <= leave {
			return
		}
		n := min(uint64(len(buf)), free-leave)
		if _, err := f.Write(buf[:n]); err != nil {
			return // full
		}
	}
}

// On a real, really full disk (a 64 MiB tmpfs): imports answer 507 and
// the node stays up; studies and export still work; it restarts on the
// full disk (read-only) and read-write again once space is freed.
func TestDiskFullTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	mnt := mountTmpfs(t, "64m")
	home := filepath.Join(mnt, "home")
	if _, err := Init(home, InitOptions{Name: "Tiny"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Archive.MinFree = 16 << 20 // floor: 4 MiB
	n := startNode(t, "Tiny", home, cfg, Options{Logger: testLogger(t, "Tiny")})
	study, files := importCT(t, n, 3, 3)
	auth := "Bearer " + n.keys.apiToken
	export := func(n *tnode) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "export")
		body := []byte(`{"out": "` + out + `"}`)
		if status, b := apiRaw(t, n, http.MethodPost, "/api/v1/studies/"+study+"/export", auth, body); status != http.StatusOK {
			t.Fatalf("export on a full disk: %d %s", status, b)
		}
	}

	fillDisk(t, mnt, 8<<20) // between the floor and the margin
	extra, more := ctStudy(t, 4, 1, "")
	status, body := apiRaw(t, n, http.MethodPost, "/api/v1/instances", auth, more[0].Data)
	if status != http.StatusInsufficientStorage || !strings.Contains(string(body), "disk full") {
		t.Fatalf("import on a full disk: %d %s", status, body)
	}
	if status, body := apiRaw(t, n, http.MethodGet, "/api/v1/studies", auth, nil); status != http.StatusOK || !strings.Contains(string(body), study) || strings.Contains(string(body), extra) {
		t.Fatalf("studies on a full disk: %d %s", status, body)
	}
	export(n)

	// Restart with the disk full but for 256 KiB: the archive opens
	// read-only; reads and exports work (their audit entries wait in the
	// spool), writes answer 507.
	n.stop()
	fillDisk(t, mnt, 256<<10)
	n = startNode(t, "Tiny", home, cfg, Options{Logger: testLogger(t, "Tiny")})
	if !n.space.readOnly {
		t.Fatal("the node opened the archive read-write on a full disk")
	}
	status, body = apiRaw(t, n, http.MethodPost, "/api/v1/instances", auth, more[0].Data)
	if status != http.StatusInsufficientStorage || !strings.Contains(string(body), "read-only") {
		t.Fatalf("import on a read-only archive: %d %s", status, body)
	}
	if status, body := apiRaw(t, n, http.MethodGet, "/api/v1/studies", auth, nil); status != http.StatusOK || !strings.Contains(string(body), study) {
		t.Fatalf("studies on a read-only archive: %d %s", status, body)
	}
	export(n)

	// Space freed: a restart is read-write again, and the export made
	// while it was read-only is in the chain.
	n.stop()
	if err := os.Remove(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, "Tiny", home, cfg, Options{Logger: testLogger(t, "Tiny")})
	if n.space.readOnly {
		t.Fatal("read-only after space was freed")
	}
	if es := findAudit(t, n, consent.Entry{Action: consent.ActExport, Study: study}); len(es) < 3 ||
		!strings.Contains(es[len(es)-1].Reason, "while the archive took no writes") {
		t.Fatalf("the export made on the read-only archive is not in the chain: %+v", es)
	}
	if _, err := os.Stat(filepath.Join(home, auditSpoolFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spool is still there: %v", err)
	}
	importFiles(t, n, more)
	_ = files
	n.stop()
}
