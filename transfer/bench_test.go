package transfer

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkEngine moves 64 MiB in 256 KiB blocks from in-memory sources
// that answer at once into a sink that keeps nothing: what is measured is
// the engine's own cost (scheduling, accounting, goroutines per request,
// the sink's goroutine), which must be far below the 400–700 MB/s the
// machine's hashing, encryption and writes allow.
func BenchmarkEngine(b *testing.B) {
	d := virtualData(256, 256*kib)
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("%d sources", n), func(b *testing.B) {
			links := make([]link, n)
			b.SetBytes(d.bytes())
			b.ReportAllocs()
			for b.Loop() {
				srcs, _ := fakes(SystemClock(), d, nil, links...)
				sink := SinkFunc(func(context.Context, Block, []byte) error { return nil })
				_, err := Fetch(context.Background(), Plan{Blocks: d.blocks, Verify: d.verify, Sink: sink}, srcs, Options{})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
