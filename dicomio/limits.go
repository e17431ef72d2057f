package dicomio

// Limits bounds the work and memory one instance may cost. A zero or
// negative field means its default, so Limits{} is DefaultLimits().
type Limits struct {
	MaxSize     int64 // largest accepted instance in bytes (default 1 GiB)
	MaxDepth    int   // sequence nesting depth (default 16)
	MaxElements int   // elements in one dataset, all levels (default 1_000_000)
	MaxInflated int64 // cap on inflated size of a deflated dataset (default 1 GiB)
	// Buffer is the most input bytes [ParseStream] holds at once (default
	// 4 MiB, at least 4 KiB): its memory is bounded by it, not by the size
	// of the instance. Parse and Read hold the whole instance and ignore it.
	Buffer int
}

const minBuffer = 4 << 10

// DefaultLimits returns the limits used for a zero Limits field.
func DefaultLimits() Limits {
	return Limits{
		MaxSize:     1 << 30,
		MaxDepth:    16,
		MaxElements: 1_000_000,
		MaxInflated: 1 << 30,
		Buffer:      4 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxSize <= 0 {
		l.MaxSize = d.MaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	if l.MaxInflated <= 0 {
		l.MaxInflated = d.MaxInflated
	}
	if l.Buffer <= 0 {
		l.Buffer = d.Buffer
	}
	// Below this the window could not hold the largest value the walker
	// reads whole (maxIndexValueLen) with its header.
	l.Buffer = max(l.Buffer, minBuffer)
	return l
}
