// Package node wires a facility's pacsnet node together: configuration
// and home directory, the Badger archive encrypted at rest, ingest
// (validate, normalize, encrypt, cut into content-addressed blocks, commit),
// the consent ledger, manifests and their durable outbox, fetches, and the
// local HTTP API that the CLI drives.
//
// node imports exchange, consent, dicomio and crypto, and plugs its own
// types into their small interfaces (exchange.Authorizer,
// exchange.BlockStore, exchange.ManifestHandler, consent.Store). It must not
// import cmd or netsim.
package node
