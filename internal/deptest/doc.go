// Package deptest holds pacsnet's layering test: one table of the
// imports each of our packages must not have, with the reason for each,
// checked against the full transitive dependencies that `go list`
// reports for every package of the module in one invocation (after
// tailscale's tstest/deptest).
//
// The table in deptest_test.go is the single statement of the import
// rules of docs/architecture.md; packages do not carry their own
// deps_test.go. A new package, or a new rule, goes into the table.
//
// The package has no non-test code and must not be imported.
package deptest
