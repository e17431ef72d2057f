// Package wire holds pacsnet's signed wire formats as pure functions:
// the invite a facility hands to a partner ([Invite], [EncodeInvite],
// [ParseInvite]) and the manifest a facility seals to a grantee
// ([Manifest], [ParseManifest], [Manifest.CheckParties]), with the study
// and instance records a manifest carries ([Study], [Instance],
// [BlockRef]).
//
// These formats are already deployed and signed: JSON field names and
// order must not change. A new field needs a new format version.
//
// # Validation
//
// Everything that can be checked from the bytes alone is checked by the
// Parse functions, so a value they return is safe to use: every signature
// verifies, and the manifest's structure holds (see [ParseManifest] for
// the list). What needs context (who sent it, who we are) is a separate
// step, [Manifest.CheckParties], so that fuzzing reaches all of the
// context-free checks.
//
// # Errors
//
// Manifest rejections are [*Error] values carrying a [Reason], a short
// stable code that audit entries and logs record ([ReasonOf]). Messages
// never quote bytes the peer sent, so they may be logged; the reasons are
// what the audit log keeps. Invite rejections wrap [ErrBadInvite].
//
// # Imports
//
// wire is pure: no I/O, no clock, no logging, no global state. Of pacsnet
// it may import only crypto (signatures, study keys) and consent (signed
// grants and revocations), so that node, its future subpackages and tools
// can share the formats without importing node. It must not import node,
// exchange, dicomio, cmd or netsim, nor any network, file or logging
// package. The layering test in internal/deptest enforces this.
package wire
