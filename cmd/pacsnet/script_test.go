package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pacsnet/pacsnet/node"
)

// TestMain lets the scripts run `pacsnet` as a command: testscript copies
// this test binary into $PATH under that name and, when it is started so,
// runs the CLI instead of the tests. Otherwise it runs the package's tests.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pacsnet": func() { os.Exit(run(os.Args[1:])) },
	})
}

// TestScripts runs the CLI scripts in testdata/script. They cover what a
// user sees (flags, exit statuses, messages, files written); e2e_test.go
// covers the exchange between facilities with real binaries.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			// Each script chooses its home with --home or $PACSNET_HOME;
			// one that forgets falls back to ~/.pacsnet, which must not be
			// testscript's /no-home (creatable when tests run as root).
			e.Setenv("PACSNET_HOME", "")
			e.Setenv("HOME", filepath.Join(e.WorkDir, "user"))
			// Under -race every process sleeps 1 s at exit so late
			// goroutines can report; with ~150 commands that is most of
			// the run. A race still fails the command (exit status 66).
			e.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":     cmdStatus,
			"perm":       cmdPerm,
			"waitfile":   cmdWaitFile,
			"stopnode":   cmdStopNode,
			"json":       cmdJSON,
			"jsonenv":    cmdJSONEnv,
			"globenv":    cmdGlobEnv,
			"chown":      cmdChown,
			"mounttmpfs": cmdMountTmpfs,
			"filldisk":   cmdFillDisk,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// globenv VAR PATTERN sets $VAR to the first path (sorted) matching
// PATTERN, relative to the work folder when PATTERN is.
func cmdGlobEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: globenv VAR PATTERN")
	}
	m, err := filepath.Glob(ts.MkAbs(args[1]))
	ts.Check(err)
	if len(m) == 0 {
		ts.Fatalf("globenv: nothing matches %s", args[1])
	}
	ts.Setenv(args[0], m[0])
}

// chown UID PATH gives PATH to another user (needs [root]).
func cmdChown(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chown UID PATH")
	}
	uid, err := strconv.Atoi(args[0])
	ts.Check(err)
	ts.Check(os.Lchown(ts.MkAbs(args[1]), uid, uid))
}

// status N PROGRAM [ARGS...] runs PROGRAM like exec and checks that it
// exits with status N. `! exec` cannot tell a usage error (2) from a
// failure (1), and the CLI promises the difference.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: %q is not an exit status", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("status: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("status: %s exited with %d, want %d", args[1], got, want)
	}
}

// perm FILE MODE checks that FILE's permission bits are exactly MODE
// (octal); ! perm, that they are not.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		ts.Fatalf("perm: mode %q: %v", args[1], err)
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := fi.Mode().Perm()
	switch {
	case neg && got == os.FileMode(want):
		ts.Fatalf("perm %s: mode is %#o", args[0], got)
	case !neg && got != os.FileMode(want):
		ts.Fatalf("perm %s: mode %#o, want %#o", args[0], got, want)
	}
}

// waitfile FILE waits up to 30 s for FILE to exist; ! waitfile FILE waits
// for it to be gone.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(path)
		if (err == nil) != neg {
			return
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			ts.Fatalf("waitfile %s: %v", args[0], err)
		}
		if time.Now().After(deadline) {
			if neg {
				ts.Fatalf("waitfile: %s still exists after 30s", args[0])
			}
			ts.Fatalf("waitfile: %s did not appear in 30s", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopnode [-INT] HOME sends SIGTERM (or SIGINT) to the node serving HOME
// (the PID in HOME/run/api.json, which must be one of the script's
// background commands) and waits up to 30 s for it to exit; a node that
// does not stop is killed and fails the script rather than hang it until
// the test times out. testscript's own kill knows only KILL and INT and
// does not wait; service managers stop nodes with SIGTERM. Check the exit
// status and output with `wait NAME` afterwards.
func cmdStopNode(ts *testscript.TestScript, neg bool, args []string) {
	sig := syscall.SIGTERM
	if len(args) == 2 && args[0] == "-INT" {
		sig, args = syscall.SIGINT, args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: stopnode [-INT] HOME")
	}
	b, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), "run", "api.json"))
	ts.Check(err)
	var ri struct {
		PID int `json:"pid"`
	}
	ts.Check(json.Unmarshal(b, &ri))
	var p *os.Process
	for _, c := range ts.BackgroundCmds() {
		if c.Process != nil && c.Process.Pid == ri.PID {
			p = c.Process
		}
	}
	if p == nil {
		ts.Fatalf("stopnode: pid %d in api.json is not a background command of this script", ri.PID)
	}
	ts.Check(p.Signal(sig))
	// testscript's goroutine waits for the process; once it has, the PID
	// is gone and signal 0 fails.
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(ri.PID, 0) == nil {
		if time.Now().After(deadline) {
			p.Kill()
			ts.Fatalf("stopnode: node %d did not stop within 30s of %v; killed", ri.PID, sig)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// json FILE checks that FILE (or stdout, stderr) holds exactly one JSON
// document and nothing else.
func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: json FILE")
	}
	err := oneJSON(readArg(ts, args[0]), new(any))
	if (err == nil) == neg {
		if neg {
			ts.Fatalf("json: %s is one JSON document", args[0])
		}
		ts.Fatalf("json: %s: %v", args[0], err)
	}
}

// jsonenv VAR FILE KEY sets $VAR to the string or number at top-level KEY
// of the JSON object in FILE (or stdout, stderr).
func cmdJSONEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: jsonenv VAR FILE KEY")
	}
	var obj map[string]any
	if err := oneJSON(readArg(ts, args[1]), &obj); err != nil {
		ts.Fatalf("jsonenv: %s: %v", args[1], err)
	}
	// KEY may name a nested key: "token.token_id".
	var v any = obj
	for _, k := range strings.Split(args[2], ".") {
		m, _ := v.(map[string]any)
		var ok bool
		if v, ok = m[k]; !ok {
			ts.Fatalf("jsonenv: %s has no key %q", args[1], args[2])
		}
	}
	switch v := v.(type) {
	case string:
		ts.Setenv(args[0], v)
	case float64:
		ts.Setenv(args[0], strconv.FormatFloat(v, 'f', -1, 64))
	default:
		ts.Fatalf("jsonenv: %s: %q is %T, not a string or number", args[1], args[2], v)
	}
}

func readArg(ts *testscript.TestScript, name string) string {
	switch name {
	case "stdout", "stderr":
		return ts.ReadFile(name)
	}
	b, err := os.ReadFile(ts.MkAbs(name))
	ts.Check(err)
	return string(b)
}

func oneJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case err == nil:
		return fmt.Errorf("more than one JSON document (next: %.40q)", bytes.TrimSpace(extra))
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("trailing data after the JSON document: %w", err)
	}
	return nil
}

// mounttmpfs DIR SIZE mounts a tmpfs of SIZE (e.g. 64m) on DIR, created,
// for the rest of the script (needs [root]).
func cmdMountTmpfs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mounttmpfs DIR SIZE")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+args[1]+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		ts.Fatalf("cannot mount a tmpfs: %v %s", err, out)
	}
	ts.Defer(func() { exec.Command("umount", dir).Run() })
}

// filldisk DIR LEAVE fills DIR's file system with DIR/fill until only
// LEAVE bytes (e.g. 8MiB) are free.
func cmdFillDisk(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: filldisk DIR LEAVE")
	}
	leave, err := node.ParseSize(args[1])
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	f, err := os.OpenFile(filepath.Join(dir, "fill"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	ts.Check(err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		ts.Check(syscall.Statfs(dir, &st))
		free := int64(st.Bavail) * int64(st.Bsize)
		if free <= leave {
			return
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), free-leave)]); err != nil {
			return
		}
	}
}
