package clock

import (
	"testing"
	"time"
)

// A fake timer fires when the clock is advanced past it, in order, and
// not before; Stop and Reset re-arm it; a zero duration fires at once.
func TestFake(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	t1 := f.NewTimer(time.Second)
	t2 := f.NewTimer(3 * time.Second)
	fired := func(tm Timer) bool {
		select {
		case <-tm.C():
			return true
		default:
			return false
		}
	}
	if fired(t1) || fired(t2) || f.Timers() != 2 {
		t.Fatal("timers fired before the clock moved")
	}
	f.Advance(time.Second)
	if !fired(t1) || fired(t2) {
		t.Fatal("after 1s: want only the 1s timer")
	}
	if f.Now() != start.Add(time.Second) {
		t.Errorf("now %s", f.Now())
	}
	if !t2.Stop() || t2.Stop() {
		t.Error("Stop: want true once, then false")
	}
	f.Advance(time.Hour)
	if fired(t2) {
		t.Error("a stopped timer fired")
	}
	t2.Reset(time.Minute)
	f.Advance(time.Minute)
	if !fired(t2) {
		t.Error("a reset timer did not fire")
	}
	if !fired(f.NewTimer(0)) {
		t.Error("a zero timer did not fire at once")
	}
	select {
	case <-After(Real(), time.Millisecond):
	case <-time.After(5 * time.Second):
		t.Error("the real clock's timer did not fire")
	}
}
