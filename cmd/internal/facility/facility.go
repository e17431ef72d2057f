// Package facility runs real `pacsnet` processes for the demo and the
// end-to-end tests: one Facility is one home and one `pacsnet serve`
// process on loopback, driven through the CLI exactly as an operator would.
//
// Every process it starts (serve and CLI commands) is started with
// Pdeathsig=SIGTERM, so that it is told to stop when the demo or test
// process that started it dies without stopping it (SIGKILL, a crash).
// That is a safety net only; the main path stays an explicit Stop by PID.
// Two caveats: Linux delivers the signal when the OS thread that forked
// the child exits, not the process (golang.org/issue/27505); the Go runtime
// only retires a thread when a goroutine locked to it with
// runtime.LockOSThread returns without unlocking, which nothing here does,
// so in practice it fires on process death. And Pdeathsig is Linux-only
// (pacsnet's target); this file does not build elsewhere.
package facility

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// Facility is one node's home and, while started, its serve process.
type Facility struct {
	Name string
	Home string
	Bin  string // the pacsnet binary

	HTTPAddr  string // fixed at the first Start so restarts keep them
	P2PPort   int
	DICOMPort int      // the DICOM listener, on 127.0.0.1
	Extra     []string // extra serve flags
	Env       []string // extra environment for every command

	cmd    *exec.Cmd
	done   chan error
	logf   *os.File
	LogTee io.Writer // optional: also copy serve's log here
}

// New describes a facility whose home is dir/<slug>.
func New(bin, dir, name string) *Facility {
	return &Facility{Name: name, Bin: bin, Home: filepath.Join(dir, slug(name))}
}

func slug(s string) string {
	b := []byte{}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c >= 'A' && c <= 'Z':
			b = append(b, c+32)
		default:
			b = append(b, '-')
		}
	}
	return string(b)
}

// LogPath is where serve's log goes.
func (f *Facility) LogPath() string { return f.Home + ".log" }

// Init runs `pacsnet init`.
func (f *Facility) Init() error {
	_, err := f.Run("init", "--name", f.Name)
	return err
}

// Start runs `pacsnet serve` on loopback ports (free ones at the first
// start, the same ones after) and waits until its API answers. A port
// found free can be taken by another process before serve binds it (tests
// of other packages run in parallel): then Start tries again, with new
// ports at the first start and with the same ones, a little later, after.
func (f *Facility) Start() error { return f.StartContext(context.Background()) }

// StartContext is Start that gives up, stopping the serve process it
// started, when ctx is done.
func (f *Facility) StartContext(ctx context.Context) error {
	fixed := f.HTTPAddr != ""
	var err error
	for range 5 {
		if err = f.start(ctx); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		if !fixed {
			f.HTTPAddr, f.P2PPort, f.DICOMPort = "", 0, 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

// dieWithParent is the SysProcAttr of every process started here; see the
// package comment for what it guarantees and what it does not.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

func (f *Facility) start(ctx context.Context) error {
	if f.cmd != nil {
		return errors.New("already started")
	}
	if f.HTTPAddr == "" {
		p, err := FreePort()
		if err != nil {
			return err
		}
		f.HTTPAddr = "127.0.0.1:" + strconv.Itoa(p)
		if f.P2PPort, err = FreePort(); err != nil {
			return err
		}
		if f.DICOMPort, err = FreePort(); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(f.Home, "run", "api.json"))
	lf, err := os.OpenFile(f.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	f.logf = lf
	args := []string{"--home", f.Home, "serve", "--http", f.HTTPAddr,
		"--p2p", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", f.P2PPort),
		"--p2p", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", f.P2PPort),
		"--dicom", fmt.Sprintf("127.0.0.1:%d", f.DICOMPort)}
	args = append(args, f.Extra...)
	// Not CommandContext: serve is stopped by Stop (SIGTERM, then wait),
	// never killed because a context ended.
	cmd := exec.Command(f.Bin, args...)
	cmd.Env = append(os.Environ(), f.Env...)
	cmd.SysProcAttr = dieWithParent()
	var w io.Writer = lf
	if f.LogTee != nil {
		w = io.MultiWriter(lf, f.LogTee)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	f.cmd = cmd
	f.done = make(chan error, 1)
	go func() { f.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-f.done:
			f.cmd = nil
			lf.Close()
			return fmt.Errorf("%s: serve exited at start (%v); log: %s", f.Name, err, tail(f.LogPath()))
		case <-ctx.Done():
			f.Stop()
			return fmt.Errorf("%s: start: %w", f.Name, ctx.Err())
		default:
		}
		if _, err := os.Stat(filepath.Join(f.Home, "run", "api.json")); err == nil {
			if _, err := f.RunContext(ctx, nil, "peers", "--json"); err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Kill()
	return fmt.Errorf("%s: serve did not come up in 60s; log: %s", f.Name, tail(f.LogPath()))
}

// PID is the serve process's PID, 0 when not running.
func (f *Facility) PID() int {
	if f.cmd == nil {
		return 0
	}
	return f.cmd.Process.Pid
}

// Stop sends SIGTERM to the serve process (by its PID) and waits for it;
// after 20 s it is killed.
func (f *Facility) Stop() error {
	if f.cmd == nil {
		return nil
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-f.done:
	case <-time.After(20 * time.Second):
		f.cmd.Process.Kill()
		err = fmt.Errorf("%s: did not stop on SIGTERM in 20s", f.Name)
		<-f.done
	}
	f.cmd = nil
	f.logf.Close()
	return err
}

// Kill stops the serve process with SIGKILL, as a crash would.
func (f *Facility) Kill() {
	if f.cmd == nil {
		return
	}
	f.cmd.Process.Kill()
	<-f.done
	f.cmd = nil
	f.logf.Close()
}

// Run runs a pacsnet command against this facility's home and returns its
// stdout; on a non-zero exit the error carries the exit code and stderr.
func (f *Facility) Run(args ...string) ([]byte, error) {
	return f.RunContext(context.Background(), nil, args...)
}

// RunContext is Run with a context and an optional writer for stderr
// (progress bars). When ctx ends, the command gets SIGTERM and, if it has
// not exited 5 s later, SIGKILL; the error then wraps ctx's error.
func (f *Facility) RunContext(ctx context.Context, stderr io.Writer, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, f.Bin, append([]string{"--home", f.Home}, args...)...)
	cmd.Env = append(os.Environ(), f.Env...)
	cmd.SysProcAttr = dieWithParent()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(&errb, stderr)
	} else {
		cmd.Stderr = &errb
	}
	err := cmd.Run()
	if ctx.Err() != nil && err != nil {
		return out.Bytes(), fmt.Errorf("pacsnet %v: %w", args, context.Cause(ctx))
	}
	if err != nil {
		if cmd.ProcessState == nil { // did not start
			return nil, fmt.Errorf("pacsnet %v: %w", args, err)
		}
		return out.Bytes(), &ExitError{Code: cmd.ProcessState.ExitCode(), Stderr: errb.String(), Args: args}
	}
	return out.Bytes(), nil
}

// JSON runs a command with --json and decodes its one JSON document into
// v, an api type: a field v does not have is an error, since every
// command prints an api type.
func (f *Facility) JSON(v any, args ...string) error {
	return f.JSONContext(context.Background(), v, args...)
}

// JSONContext is JSON with a context, as RunContext.
func (f *Facility) JSONContext(ctx context.Context, v any, args ...string) error {
	out, err := f.RunContext(ctx, nil, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := DecodeJSON(out, v); err != nil {
		return fmt.Errorf("%v --json: %w", args, err)
	}
	return nil
}

// DecodeJSON decodes b, which must be exactly one JSON document, into v
// with unknown fields disallowed.
func DecodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not one JSON document of %T: %w", v, err)
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON document")
	}
	return nil
}

// ExitError is a pacsnet command that exited non-zero.
type ExitError struct {
	Code   int
	Stderr string
	Args   []string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("pacsnet %v: exit %d: %s", e.Args, e.Code, bytes.TrimSpace([]byte(e.Stderr)))
}

// FreePort finds a port free on 127.0.0.1 for both TCP and UDP.
func FreePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		u.Close()
		return p, nil
	}
	return 0, errors.New("no free port found")
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Partner makes a and b partners of each other by exchanging invites with
// the CLI.
func Partner(a, b *Facility) error { return PartnerContext(context.Background(), a, b) }

// PartnerContext is Partner with a context, as RunContext.
func PartnerContext(ctx context.Context, a, b *Facility) error {
	for _, pair := range [][2]*Facility{{a, b}, {b, a}} {
		var inv api.Invite
		if err := pair[0].JSONContext(ctx, &inv, "invite"); err != nil {
			return err
		}
		if _, err := pair[1].RunContext(ctx, nil, "peer", "add", inv.Invite); err != nil {
			return err
		}
	}
	return nil
}
