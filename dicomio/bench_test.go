package dicomio_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// BenchmarkParse: one 512x512 16-bit CT slice (about 513 KiB). The walker
// skips the pixel data by its length, so the cost is one copy plus SHA-256.
func BenchmarkParse(b *testing.B) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	data := files[0].Data
	b.Run("Parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dicomio.Parse(data, dicomio.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Read", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dicomio.Read(bytes.NewReader(data), dicomio.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseStream", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dicomio.ParseStream(bytes.NewReader(data), io.Discard, dicomio.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare dataset", func(b *testing.B) {
		raw := datasetOf(b, "mr_explicit-le__MR_small.dcm")
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dicomio.Parse(raw, dicomio.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseCopiesOnce: the allocation of Parse on a large instance is the
// one copy into Data plus small change.
func TestParseCopiesOnce(t *testing.T) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	data := files[0].Data
	n := allocDuring(func() {
		if _, err := dicomio.Parse(data, dicomio.Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if n > uint64(len(data))+64<<10 {
		t.Fatalf("Parse of %d bytes allocated %d bytes", len(data), n)
	}
	n = allocDuring(func() {
		if _, err := dicomio.Read(bytes.NewReader(data), dicomio.Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if n > uint64(len(data))+64<<10 {
		t.Fatalf("Read of %d bytes allocated %d bytes", len(data), n)
	}
}
