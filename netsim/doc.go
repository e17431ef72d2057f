// Package netsim will run many real pacsnet nodes on simulated links
// (libp2p mocknet or x/simlibp2p): scenarios with WAN latency, loss, churn
// and partitions, built with the same constructor the CLI uses, swapping
// only transport, clock and storage directory. It never reimplements
// protocol logic.
//
// Nothing is here yet: the simulation is its own issue. netsim may import
// node; nothing imports netsim.
package netsim
