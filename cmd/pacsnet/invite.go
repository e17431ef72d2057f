package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// invitePrefix starts every invite ("pacsnet-invite-1:…").
const invitePrefix = "pacsnet-invite-"

// maxInviteFile bounds what peer add reads of a file or standard input;
// an invite is a few kilobytes.
const maxInviteFile = 64 << 10

// readInvite returns the invite that arg is, or that the file arg names,
// or that standard input holds when arg is "-": the first line starting
// with the invite prefix (a saved terminal session may hold more).
// Anything else is passed on for the node to refuse as an invalid invite.
func readInvite(arg string, stdin io.Reader) (string, error) {
	if strings.HasPrefix(arg, invitePrefix) {
		return arg, nil
	}
	var r io.Reader
	switch fi, err := os.Stat(arg); {
	case arg == "-":
		r = stdin
	case err == nil && fi.Mode().IsRegular():
		f, err := os.Open(arg)
		if err != nil {
			return "", fmt.Errorf("peer add: %w", err)
		}
		defer f.Close()
		r = f
	case err == nil:
		return "", fmt.Errorf("peer add: %s is not a file holding an invite", printable(arg))
	case errors.Is(err, fs.ErrNotExist):
		return arg, nil // not a file: the node says what is wrong with it as an invite
	default:
		return "", fmt.Errorf("peer add: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInviteFile+1))
	if err != nil {
		return "", fmt.Errorf("peer add: read invite: %w", err)
	}
	if len(b) > maxInviteFile {
		return "", fmt.Errorf("peer add: %s holds more than %d KiB: not an invite", from(arg), maxInviteFile>>10)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 4096), maxInviteFile+1)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, invitePrefix) {
			return line, nil
		}
	}
	return "", fmt.Errorf("peer add: %s holds no invite (a line starting %s, as `pacsnet invite` prints it)", from(arg), invitePrefix)
}

func from(arg string) string {
	if arg == "-" {
		return "standard input"
	}
	return printable(arg)
}
