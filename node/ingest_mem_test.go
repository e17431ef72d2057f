package node

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// bigInstance streams a multi-frame CT instance of frames 512×512 16-bit
// frames: the header of a synthetic slice with Number of Frames added and
// its Pixel Data made frames times longer, the pixels generated as they
// are read. It is never held whole.
type bigInstance struct {
	header  []byte
	pattern []byte
	n, size int64
}

func newBigInstance(t testing.TB, frames int) *bigInstance {
	t.Helper()
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Seed: 99})
	if err != nil {
		t.Fatal(err)
	}
	f := files[0].Data
	const frame = 512 * 512 * 2
	// Pixel Data (7FE0,0010) OW is the last element: 12 header bytes, then
	// one frame.
	ph := len(f) - frame - 12
	if !bytes.Equal(f[ph:ph+6], []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W'}) {
		t.Fatal("synthetic slice does not end with its Pixel Data")
	}
	// Number of Frames (0028,0008) IS goes right before Rows (0028,0010).
	rows := bytes.Index(f, []byte{0x28, 0x00, 0x10, 0x00, 'U', 'S'})
	if rows < 0 || rows > ph {
		t.Fatal("no Rows in the synthetic slice")
	}
	nf := []byte(itoaEven(frames))
	elem := append([]byte{0x28, 0x00, 0x08, 0x00, 'I', 'S'}, binary.LittleEndian.AppendUint16(nil, uint16(len(nf)))...)
	elem = append(elem, nf...)
	h := append(append(append([]byte{}, f[:rows]...), elem...), f[rows:ph+12]...)
	pixels := uint32(frame * frames)
	binary.LittleEndian.PutUint32(h[len(h)-4:], pixels)
	b := &bigInstance{header: h, pattern: make([]byte, 64<<10), size: int64(len(h)) + int64(pixels)}
	for i := range b.pattern {
		b.pattern[i] = byte(i*13 + i>>8)
	}
	return b
}

// itoaEven formats n as an IS value of even length.
func itoaEven(n int) string {
	s := []byte{}
	for ; n > 0; n /= 10 {
		s = append([]byte{byte('0' + n%10)}, s...)
	}
	if len(s)%2 == 1 {
		s = append(s, ' ')
	}
	return string(s)
}

func (b *bigInstance) Read(p []byte) (int, error) {
	if b.n >= b.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.size-b.n)]
	var n int
	if b.n < int64(len(b.header)) {
		n = copy(p, b.header[b.n:])
	} else {
		off := (b.n - int64(len(b.header))) % int64(len(b.pattern))
		n = copy(p, b.pattern[off:])
	}
	b.n += int64(n)
	return n, nil
}

// peakHeap runs f and reports the largest growth of the heap seen while
// it ran (sampled every millisecond), and the bytes allocated. The
// garbage collector runs at GOGC=10 meanwhile, so that the heap stays
// close to what is live: Badger's at-rest encryption allocates a copy of
// every value it writes or reads, which is garbage at once, so bytes
// allocated say nothing about what an ingest holds.
func peakHeap(f func()) (peak, alloc uint64) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > base.HeapAlloc && m.HeapAlloc-base.HeapAlloc > max.Load() {
				max.Store(m.HeapAlloc - base.HeapAlloc)
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	return max.Load(), end.TotalAlloc - base.TotalAlloc
}

// A 200 MB multi-frame instance streams through ingest with its memory
// bounded by archive.ingest_buffer, not by its size (docs/architecture.md,
// Streaming ingest), and is stored whole and verified.
func TestIngestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MB")
	}
	n := newNode(t, "Alpha")
	in := newBigInstance(t, 400)
	// What the archive must give back: the input (its preamble is already
	// zero), hashed as it is generated.
	h := sha256.New()
	io.Copy(h, newBigInstance(t, 400))
	want := hex.EncodeToString(h.Sum(nil))

	var res ImportResult
	start := time.Now()
	peak, alloc := peakHeap(func() { res = n.ingest.Ingest(context.Background(), in) })
	if res.Outcome != OutcomeStored || res.Digest != want || res.Size != in.size {
		t.Fatalf("ingest: %+v (size %d, sha256 %s)", res, in.size, want)
	}
	buf := uint64(n.cfg.Archive.IngestBuffer)
	bound := 3*buf + 2<<20 + 16<<20 // the stated bound, and 16 MiB for Badger's and the test's own
	t.Logf("%d bytes ingested in %v: peak heap growth %d bytes, %d bytes allocated (bound %d)", in.size, time.Since(start).Round(time.Millisecond), peak, alloc, bound)
	if peak > bound {
		t.Errorf("peak heap growth %d bytes while ingesting %d bytes; want at most %d", peak, in.size, bound)
	}
	data, rec, err := n.archive.InstanceData(res.Study, res.SOPInstanceUID)
	if err != nil || int64(len(data)) != in.size || rec.Digest != want || len(rec.Blocks) < 200 {
		t.Fatalf("read back: %d bytes, %d blocks, %v", len(data), len(rec.Blocks), err)
	}
	// The same instance again is a duplicate, and writes nothing.
	if r := n.ingest.Ingest(context.Background(), newBigInstance(t, 400)); r.Outcome != OutcomeDuplicate {
		t.Errorf("again: %+v", r)
	}
}

// deflatedBomb makes a Part-10 file in Deflated Explicit VR Little Endian
// whose dataset inflates to more than inflated bytes: a synthetic slice's
// dataset with its Pixel Data made that long and all zeros.
func deflatedBomb(t testing.TB, inflated int) []byte {
	t.Helper()
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 64, Cols: 64, Seed: 98})
	if err != nil {
		t.Fatal(err)
	}
	f := files[0].Data
	// The meta group: (0002,0000) UL group length at 132, the group after.
	metaLen := int(binary.LittleEndian.Uint32(f[140:144]))
	metaEnd := 144 + metaLen
	const explicitLE = "1.2.840.10008.1.2.1\x00"
	const deflated = "1.2.840.10008.1.2.1.99"
	i := bytes.Index(f[:metaEnd], []byte{0x02, 0x00, 0x10, 0x00, 'U', 'I'})
	if i < 0 || string(f[i+8:i+8+len(explicitLE)]) != explicitLE {
		t.Fatal("synthetic slice is not Explicit VR Little Endian")
	}
	var meta []byte
	meta = append(meta, f[144:i]...)
	meta = append(meta, 0x02, 0x00, 0x10, 0x00, 'U', 'I')
	meta = binary.LittleEndian.AppendUint16(meta, uint16(len(deflated)))
	meta = append(meta, deflated...)
	meta = append(meta, f[i+8+len(explicitLE):metaEnd]...)
	ds := bytes.Clone(f[metaEnd:])
	binary.LittleEndian.PutUint32(ds[len(ds)-64*64*2-4:], uint32(inflated)) // Pixel Data's length
	ds = ds[:len(ds)-64*64*2]
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestSpeed)
	zw.Write(ds)
	zeros := make([]byte, 1<<20)
	for n := 0; n < inflated; n += len(zeros) {
		zw.Write(zeros[:min(len(zeros), inflated-n)])
	}
	zw.Close()
	out := append(bytes.Clone(f[:132]), 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(meta)))
	out = append(out, meta...)
	return append(out, z.Bytes()...)
}

// A small deflated file that inflates far beyond archive.max_instance_size
// is refused as too large, and ingesting it holds memory bounded by the
// buffer, not by what it inflates to; the same shape within the limit is
// stored.
func TestIngestDeflateBomb(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Archive.MaxInstanceSize = 32 << 20 }})
	bomb := deflatedBomb(t, 300<<20)
	var res ImportResult
	peak, _ := peakHeap(func() { res = n.ingest.Import(context.Background(), bomb) })
	t.Logf("%d deflated bytes inflating to 300 MiB: %s %s; peak heap growth %d bytes", len(bomb), res.Outcome, res.Code, peak)
	if res.Outcome != OutcomeRejected || res.Code != "too-large" {
		t.Errorf("bomb: %+v", res)
	}
	if bound := 3*uint64(n.cfg.Archive.IngestBuffer) + 16<<20; peak > bound {
		t.Errorf("peak heap growth %d bytes, want at most %d", peak, bound)
	}
	if r := n.ingest.Import(context.Background(), deflatedBomb(t, 8<<20)); r.Outcome != OutcomeStored {
		t.Errorf("deflated instance within the limit: %+v", r)
	}
}
