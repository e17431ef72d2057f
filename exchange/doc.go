// Package exchange is pacsnet's libp2p layer: it builds the host that only
// partner facilities can connect to ([NewHost]) and speaks the pacsnet wire
// protocols on it ([Service]):
//
//   - [ManifestProtocol]: a facility pushes one sealed (signed, then
//     age-encrypted) study manifest to a partner and learns, as a single
//     code, whether the partner stored it durably.
//   - [ManifestPullProtocol]: a facility asks a partner for the sealed
//     manifest of a study; the partner's [ManifestSource] answers only
//     under a live grant.
//   - [BlocksProtocol]: a facility fetches content-addressed ciphertext
//     blocks from a partner, citing a grant. The serving side asks its
//     [Authorizer] before every single block, so a revocation takes
//     effect in the middle of a transfer; the fetching side recomputes
//     every block's multihash before handing it on.
//   - [SecondaryBlocksProtocol]: the same blocks from a secondary holder
//     (a facility that fetched the study from its original holder); the
//     requester presents the original holder's signed grant first on the
//     stream, the serving side's [GrantPresenter] checks it and returns
//     the [Authorizer] that decides every block under it.
//
// # What it must not know
//
// exchange imports no pacsnet package. It knows nothing of consent
// (grants, audit), dicomio or node: it asks for decisions and data through
// the small interfaces it defines ([Partners], [Authorizer], [BlockStore],
// [ManifestHandler], [ManifestSource], [GrantPresenter]) and node plugs
// the real types in. The layering test in internal/deptest enforces this.
//
// # Errors on the wire
//
// Peers never see error text: a handler's error is mapped onto a [Code]
// through the one table in errors.go, and the fetching or pushing side
// gets a [*RemoteError] that matches the sentinel of its code with
// [errors.Is] (for example [ErrDenied]). This keeps patient data and local
// details out of anything a peer can read.
//
// # Hostile peers
//
// Every frame has a size cap that is checked before anything is allocated
// ([MaxManifestSize], [MaxBlockSize], [MaxGrantSize], [MaxPresentedGrantSize],
// [MaxBlocksPerRequest], [MaxStudySize]); every stream read and write has
// a deadline; a stream is reset on error and closed when done. The
// resource manager ([Limits]) accounts for every frame held in memory.
package exchange
