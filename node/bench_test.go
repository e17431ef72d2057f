package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// benchNode starts a node in a fresh home on loopback.
func benchNode(b *testing.B, name string, setup ...func(*Config)) *Node {
	b.Helper()
	home := b.TempDir()
	cfg, err := Init(home, InitOptions{Name: name})
	if err != nil {
		b.Fatal(err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.DICOMAddr = "127.0.0.1:0"
	for _, s := range setup {
		s(&cfg)
	}
	n, err := Open(home, cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// BenchmarkFetch measures a whole fetch of a 200-slice 512×512 CT between
// two nodes on loopback: block transfer with per-block authorization, CID
// verification, decryption, SHA-256 verification and group commits.
// Bytes/s is plaintext study bytes.
func BenchmarkFetch(b *testing.B) {
	holder := benchNode(b, "Holder")
	study, files, err := synth.CT(synth.CTOptions{Slices: 200, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, f := range files {
		if r := holder.ingest.Import(context.Background(), f.Data); r.Outcome != OutcomeStored {
			b.Fatalf("import: %+v", r)
		}
		size += int64(len(f.Data))
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A new facility each time, under its own name: the holder
		// refuses a second partner with a name it already knows.
		grantee := benchNode(b, fmt.Sprintf("Grantee %d", i))
		benchShare(b, holder, grantee, study)
		b.StartTimer()
		benchFetchDone(b, grantee, study)
	}
}

// benchFetchDone fetches the study at grantee and waits for the fetch to
// be done.
func benchFetchDone(b *testing.B, grantee *Node, study string) {
	b.Helper()
	st, err := grantee.fetcher.Start(context.Background(), FetchRequest{Study: study})
	if err != nil {
		b.Fatal(err)
	}
	for st.State != FetchDone {
		if st.State == FetchFailed {
			b.Fatal(st.Error)
		}
		time.Sleep(2 * time.Millisecond)
		st, _ = grantee.fetcher.Status(st.ID)
	}
}

// benchShare makes holder and grantee partners, grants the study to the
// grantee and waits for its manifest there.
func benchShare(b *testing.B, holder, grantee *Node, study string) {
	b.Helper()
	hinv, _ := holder.partners.Invite()
	ginv, _ := grantee.partners.Invite()
	if _, err := holder.partners.Add(ginv, "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := grantee.partners.Add(hinv, "bench"); err != nil {
		b.Fatal(err)
	}
	if _, err := holder.sharing.Grant(context.Background(), GrantRequest{To: grantee.ID().String(), Study: study, Actor: "bench"}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ss, _ := grantee.inbox.Shared(); len(ss) == 1 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("manifest did not arrive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkImport measures ingest of 512×512 CT slices: validation,
// normalization, encryption, blocks and a synced commit per instance.
func BenchmarkImport(b *testing.B) {
	n := benchNode(b, "Importer")
	_, files, err := synth.CT(synth.CTOptions{Slices: 50, Seed: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(files[0].Data)))
	b.ResetTimer()
	for i := range b.N {
		f := files[i%len(files)].Data
		if i >= len(files) {
			b.StopTimer()
			_, more, _ := synth.CT(synth.CTOptions{Slices: 1, Seed: int64(1000 + i)})
			f = more[0].Data
			b.StartTimer()
		}
		if r := n.ingest.Import(context.Background(), f); r.Outcome != OutcomeStored {
			b.Fatalf("import: %+v", r)
		}
	}
}
