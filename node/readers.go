package node

import (
	"context"
	"slices"

	"github.com/pacsnet/pacsnet/node/internal/store"
)

// reader is who reads a study: a local user (by unique ID and name), or
// the zero reader for a DICOM AE or the node itself (forwarding), which
// have no user.
type reader struct{ id, name string }

// readerOf is the reader behind an authenticated request.
func readerOf(p principal) reader { return reader{id: p.User, name: p.Name} }

// readerFrom is the reader behind a request's context (DICOMweb).
func readerFrom(ctx context.Context) reader {
	p, _ := ctx.Value(principalKey{}).(principal)
	return readerOf(p)
}

// named says whether a grant's or a study's user names this reader.
func (rd reader) named(u string) bool {
	return rd.id != "" && (u == rd.id || (rd.name != "" && u == rd.name))
}

// mayRead says whether rd may read a study held here: every study but a
// partner's copy fetched under grants that each name a user (its
// Readers), which only those users may read — not the facility's other
// users, not its admin, not its DICOM AEs.
func (rd reader) mayRead(readers []string) bool {
	return len(readers) == 0 || slices.ContainsFunc(readers, rd.named)
}

// mayList says whether rd may see a study a partner shared with us and we
// have not fetched: when some grant for it names no user, or names rd.
func (rd reader) mayList(gs []store.SharedGrant) bool {
	if len(gs) == 0 {
		return true
	}
	for _, g := range gs {
		if u := g.Grant.Grant.GranteeUser; u == "" || rd.named(u) {
			return true
		}
	}
	return false
}

// readersAfterFetch is a partner's study's Readers once a fetch under a
// grant naming user (or nobody) started: a grant to the facility opens
// the copy to it; a grant to a user adds that user to a copy that is
// still restricted (or new).
func readersAfterFetch(sr store.Study, user string) []string {
	switch {
	case user == "":
		return nil
	case sr.Instances > 0 && len(sr.Readers) == 0:
		return nil // already the facility's
	case slices.Contains(sr.Readers, user):
		return sr.Readers
	}
	return append(slices.Clone(sr.Readers), user)
}
