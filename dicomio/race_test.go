//go:build race

package dicomio_test

// raceEnabled: the race detector makes the stream tests (coroutine
// switches, byte-sized reads) many times slower; they sample less.
const raceEnabled = true
