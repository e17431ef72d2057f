package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkExchange is issue 9's comparison, in one run: the generated
// 500-slice CT (512×512, 16-bit, ≈263 MB; PACSNET_BENCH_SLICES changes
// it) moved from one facility to another on loopback by
//
//   - raw: the same bytes through one plain libp2p stream (TCP, TLS,
//     yamux: libp2p's defaults), each file hashed with SHA-256 as it arrives: the ceiling of
//     any exchange over libp2p that checks what it receives;
//   - orthanc-peers: Debian's Orthanc sending the study to a second
//     Orthanc over its HTTP peers protocol (/peers/{id}/store);
//   - orthanc-cstore: the same two Orthancs by DICOM C-STORE
//     (/modalities/{id}/store);
//   - pacsnet: a grantee node fetching the study from the holder node
//     that granted it (per-block authorization, CID check, group commits
//     synced, each on a goroutine of its own while the next batch
//     arrives; each instance is decrypted and checked against its
//     SHA-256 when it is read, not here).
//
// Each reports MB/s of DICOM file bytes; the parent prints pacsnet's
// ratios to the others (a line of its own in bench.out). Orthanc runs are skipped where Orthanc is not installed.
func BenchmarkExchange(b *testing.B) {
	files, size := benchCT(b)
	rate := map[string]float64{}
	run := func(name string, once func(b *testing.B) time.Duration) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			fetchCPU = 0
			for range b.N {
				total += once(b)
			}
			r := float64(size*int64(b.N)) / 1e6 / total.Seconds()
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op") // the timed part only
			b.ReportMetric(r, "MB/s")
			b.ReportMetric(float64(len(files)*b.N)/total.Seconds(), "inst/s")
			rate[name] = r
			if name == "pacsnet" {
				// Both nodes' CPU per second of fetch: 2 is both cores busy.
				b.ReportMetric(fetchCPU.Seconds()/total.Seconds(), "CPU-cores")
			}
		})
	}
	run("raw", func(b *testing.B) time.Duration { return rawLibp2pSHA(b, files) })
	if _, err := exec.LookPath("Orthanc"); err == nil {
		run("orthanc-peers", func(b *testing.B) time.Duration { return orthancToOrthanc(b, files, "peers") })
		run("orthanc-cstore", func(b *testing.B) time.Duration { return orthancToOrthanc(b, files, "modalities") })
	}
	run("pacsnet", func(b *testing.B) time.Duration { return pacsnetFetch(b, files) })
	if p := rate["pacsnet"]; p > 0 {
		var ratios []string
		for _, other := range []string{"raw", "orthanc-peers", "orthanc-cstore"} {
			if r := rate[other]; r > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f× %s", p/r, other))
			}
		}
		fmt.Printf("BenchmarkExchange ratios: pacsnet = %s\n", strings.Join(ratios, ", "))
	}
}

// rawLibp2pSHA sends the files' bytes through one libp2p stream between
// two hosts on loopback TCP and hashes each file as it arrives.
func rawLibp2pSHA(b *testing.B, files []string) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	var data [][]byte
	for _, f := range files {
		d, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		data = append(data, d)
	}
	server, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	client, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server.SetStreamHandler("/bench-raw", func(st network.Stream) {
		defer st.Close()
		for _, d := range data {
			if _, err := st.Write(d); err != nil {
				return
			}
		}
	})
	if err := client.Connect(context.Background(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	st, err := client.NewStream(context.Background(), server.ID(), "/bench-raw")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	buf := make([]byte, 1<<20)
	for _, d := range data {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.LimitReader(st, int64(len(d))), buf); err != nil {
			b.Fatal(err)
		}
		if sum := sha256.Sum256(d); string(h.Sum(nil)) != string(sum[:]) {
			b.Fatal("raw stream: the bytes differ")
		}
	}
	return time.Since(start)
}

// orthancToOrthanc loads the files into one Orthanc (by storescu, not
// timed) and times its sending the study to a second one, over HTTP
// peers or C-STORE, as one synchronous job.
func orthancToOrthanc(b *testing.B, files []string, via string) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	dst := startOrthanc(b, map[string]any{}, map[string]any{"DicomAet": "DEST", "ConcurrentJobs": 4})
	src := startOrthanc(b, map[string]any{"dest": []any{"DEST", "127.0.0.1", mustAtoi(dst.dicom)}},
		map[string]any{"DicomAet": "SOURCE", "ConcurrentJobs": 4,
			"OrthancPeers": map[string]any{"dest": []any{"http://127.0.0.1:" + dst.http + "/"}}})
	storescu(b, "127.0.0.1:"+src.dicom, "SOURCE", files, 4)
	out, err := src.rest("GET", "/studies", nil)
	if err != nil {
		b.Fatal(err)
	}
	var studies []string
	if err := json.Unmarshal(out, &studies); err != nil || len(studies) != 1 {
		b.Fatalf("the source Orthanc holds %d studies (%v): %s", len(studies), err, out)
	}
	body, _ := json.Marshal(map[string]any{"Resources": studies, "Synchronous": true})
	start := time.Now()
	if _, err := src.rest("POST", "/"+via+"/dest/store", body); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	out, err = dst.rest("GET", "/statistics", nil)
	if err != nil {
		b.Fatal(err)
	}
	var stats struct{ CountInstances int }
	json.Unmarshal(out, &stats)
	if stats.CountInstances != len(files) {
		b.Fatalf("the destination Orthanc received %d instances of %d", stats.CountInstances, len(files))
	}
	return elapsed
}

// fetchCPU sums the CPU time (both nodes, user and system) of the timed
// part of pacsnetFetch's runs.
var fetchCPU time.Duration

// profileTimed writes a CPU profile of the timed part alone to the file
// PACSNET_BENCH_CPUPROFILE names (one file per run, numbered), for
// profiling a transfer without its setup; it returns the function that
// stops it.
func profileTimed(b *testing.B) func() {
	name := os.Getenv("PACSNET_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}
	}
	profileRuns++
	f, err := os.Create(fmt.Sprintf("%s.%d", name, profileRuns))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

var profileRuns int

// benchImport imports files (one study) into n and returns the study.
func benchImport(b *testing.B, n *Node, files []string) string {
	b.Helper()
	var study string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		r := n.ingest.Import(context.Background(), data)
		if r.Outcome != OutcomeStored {
			b.Fatalf("import: %+v", r)
		}
		study = r.Study
	}
	return study
}

// pacsnetFetch imports the files at a holder node (not timed), grants
// the study to a new grantee node and times the grantee's fetch.
func pacsnetFetch(b *testing.B, files []string) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	holder := benchNode(b, "Holder")
	grantee := benchNode(b, "Grantee")
	study := benchImport(b, holder, files)
	benchShare(b, holder, grantee, study)
	stop := profileTimed(b)
	cpu0 := cpuTime()
	start := time.Now()
	benchFetchDone(b, grantee, study)
	elapsed := time.Since(start)
	fetchCPU += cpuTime() - cpu0
	stop()
	holder.Close()
	grantee.Close()
	return elapsed
}
