package node

import (
	"path/filepath"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"

	"github.com/pacsnet/pacsnet/crypto"
)

// HostKey returns the libp2p private key of the node whose home is home:
// the key its peer ID is derived from. A simulation (netsim) makes the
// node's mocknet peer with it and passes that host in Options.Host, so
// the simulated node has the identity its invites and signatures name.
// It is the one thing netsim needs that no exported call gave.
func HostKey(home string) (lcrypto.PrivKey, error) {
	id, err := crypto.LoadIdentity(filepath.Join(home, keysDir))
	if err != nil {
		return nil, err
	}
	return id.Sign, nil
}
