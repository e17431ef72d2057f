package dicomio

import "strconv"

const maxWarnings = 32

// warnings collects distinct lenient acceptances. Messages are fixed text
// plus tags, never values, so they can be logged as they are.
type warnings struct {
	list    []string
	seen    map[string]struct{}
	dropped int
}

func (w *warnings) add(msg string) {
	if _, ok := w.seen[msg]; ok {
		return
	}
	if w.seen == nil {
		w.seen = make(map[string]struct{})
	}
	if len(w.list) >= maxWarnings {
		w.dropped++
		return
	}
	w.seen[msg] = struct{}{}
	w.list = append(w.list, msg)
}

// skip reports that the list is full, so that a caller can avoid
// formatting a warning that would be dropped; it counts it as dropped.
func (w *warnings) skip() bool {
	if len(w.list) >= maxWarnings {
		w.dropped++
		return true
	}
	return false
}

func (w *warnings) result() []string {
	if w.dropped > 0 {
		// dropped may count repeats: seen stops growing once the list is
		// full, so a hostile input cannot grow it without bound.
		return append(w.list, "further warnings not shown")
	}
	return w.list
}

func itoa(n int) string { return strconv.Itoa(n) }
