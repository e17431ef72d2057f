//go:build !race

package dicomio_test

const raceEnabled = false
