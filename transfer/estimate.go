package transfer

import "time"

// estimator measures one source's path and sizes its window from it:
// twice the bandwidth-delay product, between a floor and a cap.
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
type estimator struct {
	rate   float64       // bytes per second
	rtt    time.Duration // smoothed, queueing removed
	minRTT time.Duration
	window int64
	lo, hi int64
}

func newEstimator(lo, hi int64) estimator {
	return estimator{window: lo, lo: lo, hi: hi}
}

// sample records the arrival of a block of a request sent elapsed ago:
// sent is the bytes the source delivered since that request was sent,
// this block included, and ahead those before this block; first tells
// whether this is the request's first block.
func (e *estimator) sample(first bool, ahead, sent int64, elapsed time.Duration) {
	elapsed = max(elapsed, time.Microsecond)
	r := float64(sent) / elapsed.Seconds()
	switch {
	case e.rate == 0:
		e.rate = r
	case r > e.rate:
		e.rate += (r - e.rate) / 2
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
	w := int64(2 * e.rate * e.rtt.Seconds())
	e.window = min(max(w, e.lo), e.hi)
}
