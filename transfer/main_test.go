package transfer

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: Fetch owns and waits for all
// it starts.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
