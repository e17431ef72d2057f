// Package access is the pure logic of a node's local people and their
// credentials (issue 8): account names and roles, argon2id password
// hashes, bearer secrets stored only as their SHA-256, session lifetimes
// and the back-off after failed logins. Time is passed in; it keeps no
// files and starts no goroutines.
//
// It must not import node, api, exchange or cmd: the node's users room
// stores what this package computes and decides.
package access
