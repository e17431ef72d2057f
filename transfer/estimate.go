package transfer

import "time"

// estimator measures one source's path and sizes its window from it:
// twice the bandwidth-delay product, between a floor and a cap (three
// times while the rate is still climbing, see below).
//
// Rate samples are delivery rates as BBR takes them: when a block of a
// request arrives, the bytes the source delivered since the request was
// sent over the time since it was sent. While the window is what limits
// the source, that is window/RTT, so the target (2·rate·RTT) is twice
// the window and the window doubles about every round trip; once the link
// is what limits it, the rate is the link's and the window settles at
// twice its bandwidth-delay product. The average rises fast (½ of the
// way to a higher sample) and falls slowly (⅛ of the way to a lower
// one): a link is not throttled while the window grows, and one slow
// moment does not collapse it.
//
// RTT samples come from a request's first block. Blocks the source
// delivered since the request was sent were queued ahead of it, so their
// transfer time at the measured rate is taken off the sample: without
// that, a full pipe would read as a longer round trip, the longer round
// trip as a bigger window, and the window would grow without end. A
// sample is never taken below the shortest round trip seen.
//
// A rate sample spans a round trip, so it trails the window by one: with
// a gain of 2 the window grows by only about 1.5 per round trip. Like
// BBR's startup, the gain is 3 until the rate stops climbing (less than
// 25% more over three round trips in a row), which gives about 2 per
// round trip; a 1 Gbit/s path at 50 ms is full within some 6 round trips.
type estimator struct {
	rate   float64       // bytes per second
	rtt    time.Duration // smoothed, queueing removed
	minRTT time.Duration
	window int64
	lo, hi int64

	// startup
	growing   bool
	roundEnds time.Time // the end of the round trip being watched
	best      float64   // the rate to beat by 25%
	flat      int       // round trips in a row that did not beat it
}

func newEstimator(lo, hi int64) estimator {
	return estimator{window: lo, lo: lo, hi: hi, growing: true}
}

// sample records the arrival, at now, of a block of a request sent elapsed ago:
// sent is the bytes the source delivered since that request was sent,
// this block included, and ahead those before this block; first tells
// whether this is the request's first block.
func (e *estimator) sample(now time.Time, first bool, ahead, sent int64, elapsed time.Duration) {
	elapsed = max(elapsed, time.Microsecond)
	r := float64(sent) / elapsed.Seconds()
	switch {
	case e.rate == 0:
		e.rate = r
	case r > e.rate:
		e.rate = r
	default:
		e.rate += (r - e.rate) / 8
	}
	if first {
		if e.minRTT == 0 || elapsed < e.minRTT {
			e.minRTT = elapsed
		}
		s := max(elapsed-time.Duration(float64(ahead)/e.rate*float64(time.Second)), e.minRTT)
		if e.rtt == 0 {
			e.rtt = s
		} else {
			e.rtt += (s - e.rtt) / 8
		}
	}
	gain := 2.0
	if e.growing {
		gain = 3
		if !now.Before(e.roundEnds) {
			if e.rate >= 1.25*e.best {
				e.best, e.flat = e.rate, 0
			} else if e.flat++; e.flat >= 3 {
				e.growing = false
			}
			e.roundEnds = now.Add(e.rtt)
		}
	}
	w := int64(gain * e.rate * e.rtt.Seconds())
	e.window = min(max(w, e.lo), e.hi)
}
