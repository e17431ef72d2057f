package node

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// node the tests start is closed, and Close must wait for everything the
// node started (HTTP server, outbox, fetches, exchange handlers, libp2p
// host, Badger). No goroutine needs to be ignored: libp2p and Badger stop
// all of theirs on Close.
// It also removes the benchmarks' generated CT (benchCT), made once per
// run and shared by them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if benchCTDir != "" {
			os.RemoveAll(benchCTDir)
		}
		os.Exit(code)
	}))
}
