package synth

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

// TestGenerateStopsCleanly: when emit fails, generate returns its error
// and leaves no goroutine behind, whatever the workers were doing.
func TestGenerateStopsCleanly(t *testing.T) {
	defer goleak.VerifyNone(t)
	boom := errors.New("disk full")
	for _, stopAt := range []int{0, 1, 5, 29} {
		n := 0
		_, err := generate(CTOptions{Slices: 30, Rows: 32, Cols: 32}, func(File) error {
			if n == stopAt {
				return boom
			}
			n++
			return nil
		})
		if !errors.Is(err, boom) || n != stopAt {
			t.Fatalf("stop at %d: err %v after %d slices", stopAt, err, n)
		}
	}
	// And in order, all of them, when nothing fails.
	var names []string
	if _, err := generate(CTOptions{Slices: 17, Rows: 8, Cols: 8}, func(f File) error {
		names = append(names, f.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		if want := fmt.Sprintf("CT%06d.dcm", i+1); n != want {
			t.Fatalf("slice %d is %s, want %s", i, n, want)
		}
	}
}
