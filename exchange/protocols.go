package exchange

import "github.com/libp2p/go-libp2p/core/protocol"

// Protocol IDs, newest version first where there are several. A protocol's
// major version changes whenever a peer speaking the old one could
// misread the new one.
const (
	// ManifestProtocol carries one sealed manifest from its issuer to a
	// partner; see [Service.PushManifest] for the exchange.
	ManifestProtocol protocol.ID = "/pacsnet/manifest/1.0.0"

	// ManifestPullProtocol carries one sealed manifest to a partner that
	// asks for it by study; see [Service.PullManifest] for the exchange.
	ManifestPullProtocol protocol.ID = "/pacsnet/manifest-pull/1.0.0"

	// BlocksProtocol carries ciphertext blocks to a partner that cites a
	// grant; see [Service.FetchBlocks] for the exchange.
	BlocksProtocol protocol.ID = "/pacsnet/blocks/1.0.0"

	// SecondaryBlocksProtocol carries ciphertext blocks from a secondary
	// holder (a facility that fetched the study) to a partner that
	// presents a grant the study's original holder signed; see
	// [Service.FetchBlocksPresenting] for the exchange.
	SecondaryBlocksProtocol protocol.ID = "/pacsnet/blocks-secondary/1.0.0"

	// AskProtocol carries one signed message (an access request, a
	// request's status, a patient query) and its signed answer; see
	// [Service.Ask].
	AskProtocol protocol.ID = "/pacsnet/ask/1.0.0"
)

// ServiceName is the resource-manager service that the streams of both
// protocols are attached to, so that their memory and stream counts are
// accounted (and can be limited) together.
const ServiceName = "pacsnet.exchange"
