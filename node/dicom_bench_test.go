package node

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// The C-STORE benchmark's study: a generated CT, 512×512, 16-bit
// (PACSNET_BENCH_SLICES slices, 500 by default: ~263 MB), written once.
var (
	benchCTDir   string // removed by TestMain
	benchCTOnce  sync.Once
	benchCTPaths []string
	benchCTBytes int64
	benchCTErr   error
)

func benchCT(b *testing.B) ([]string, int64) {
	b.Helper()
	benchCTOnce.Do(func() {
		slices := 500
		if s, err := strconv.Atoi(os.Getenv("PACSNET_BENCH_SLICES")); err == nil && s > 0 {
			slices = s
		}
		dir, err := os.MkdirTemp("", "pacsnet-bench-ct-")
		if err != nil {
			benchCTErr = err
			return
		}
		benchCTDir = dir
		_, benchCTPaths, benchCTErr = synth.WriteCT(dir, synth.CTOptions{Slices: slices, Seed: 500})
		for _, p := range benchCTPaths {
			if fi, err := os.Stat(p); err == nil {
				benchCTBytes += fi.Size()
			}
		}
	})
	if benchCTErr != nil {
		b.Fatal(benchCTErr)
	}
	return benchCTPaths, benchCTBytes
}

// storescu sends files with DCMTK's storescu, split across assocs
// processes at once (TCP_NODELAY: DCMTK's Nagle default costs ~45 ms per
// C-STORE).
func storescu(b *testing.B, addr, called string, files []string, assocs int) {
	b.Helper()
	storescuNagle(b, addr, called, files, assocs, false)
}

// storescuNagle is storescu, with DCMTK's default (Nagle's algorithm on)
// when nagle.
func storescuNagle(b *testing.B, addr, called string, files []string, assocs int, nagle bool) {
	b.Helper()
	host, port, _ := net.SplitHostPort(addr)
	var wg sync.WaitGroup
	errs := make(chan error, assocs)
	for i := range assocs {
		var part []string
		for j := i; j < len(files); j += assocs {
			part = append(part, files[j])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("storescu", append([]string{"-aet", "BENCHSCU", "-aec", called, host, port}, part...)...)
			if !nagle {
				cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("storescu: %v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// procStatus reads a "kB" field of /proc/self/status, in MB.
func procStatus(field string) float64 { return pidStatus(os.Getpid(), field) }

// cpuTime is this process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS resets (when reset) or reads this process's peak resident set
// (VmHWM), in MB.
func peakRSS(reset bool) float64 {
	if reset {
		debug.FreeOSMemory() // what the study's generation left behind is not the node's
		os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		return 0
	}
	return pidPeakRSS(os.Getpid())
}

// pidPeakRSS is a process's peak resident set (VmHWM), in MB, or 0 where
// it cannot be read.
func pidPeakRSS(pid int) float64 { return pidStatus(pid, "VmHWM") }

// pidStatus reads a "kB" field of /proc/PID/status, in MB (0 where it
// cannot be read).
func pidStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkCStore sends the generated CT with storescu to DCMTK's
// storescp (writing plain files: the baseline) and to a pacsnet node
// (parse, hash, encrypt, durable commit of every instance), on one
// association and on four at once. It reports instances/s, MB/s and, for
// each receiver, the peak RSS of its process (storescp's, Orthanc's, the
// node's); then a line of ratios per number of associations: pacsnet
// against storescp on one association and against Orthanc on as many
// (the targets), for docs/performance.md.
func BenchmarkCStore(b *testing.B) {
	if _, err := exec.LookPath("storescu"); err != nil {
		b.Skip("storescu not installed (make deps installs dcmtk)")
	}
	files, size := benchCT(b)
	rate := map[string]float64{} // inst/s by sub-benchmark, of this run
	report := func(b *testing.B, elapsed time.Duration) {
		r := float64(len(files)*b.N) / elapsed.Seconds()
		b.ReportMetric(r, "inst/s")
		b.ReportMetric(float64(size*int64(b.N))/1e6/elapsed.Seconds(), "MB/s")
		_, name, _ := strings.Cut(b.Name(), "/")
		rate[name] = r
	}
	defer func() {
		for _, assocs := range []int{1, 4} {
			p := rate[fmt.Sprintf("pacsnet/assocs=%d", assocs)]
			if p == 0 {
				continue
			}
			var ratios []string
			if r := rate["storescp/assocs=1"]; r > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f× storescp on 1 association", p/r))
			}
			if r := rate[fmt.Sprintf("orthanc/assocs=%d", assocs)]; r > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f× Orthanc on %d", p/r, assocs))
			}
			if len(ratios) > 0 {
				fmt.Printf("BenchmarkCStore ratios: pacsnet on %d association(s) = %s\n", assocs, strings.Join(ratios, ", "))
			}
		}
		if p, o := rate["pacsnet-storescu-nagle/assocs=1"], rate["orthanc-storescu-nagle/assocs=1"]; p > 0 && o > 0 {
			fmt.Printf("BenchmarkCStore ratios: with storescu's default (Nagle on), pacsnet = %.2f× Orthanc\n", p/o)
		}
	}()
	for _, assocs := range []int{1, 4} {
		b.Run(fmt.Sprintf("storescp/assocs=%d", assocs), func(b *testing.B) {
			var total time.Duration
			var rss float64
			for range b.N {
				dir := b.TempDir()
				port := freeBenchPort(b)
				scp := exec.Command("storescp", "-aet", "STORESCP", "-od", dir, "--accept-all", port)
				scp.Env = append(os.Environ(), "TCP_NODELAY=1")
				if err := scp.Start(); err != nil {
					b.Fatal(err)
				}
				waitListening(b, "127.0.0.1:"+port)
				start := time.Now()
				storescu(b, "127.0.0.1:"+port, "STORESCP", files, assocs)
				total += time.Since(start)
				rss = max(rss, pidPeakRSS(scp.Process.Pid))
				scp.Process.Kill()
				scp.Wait()
			}
			report(b, total)
			b.ReportMetric(rss, "peak-RSS-MB")
		})
		b.Run(fmt.Sprintf("orthanc/assocs=%d", assocs), func(b *testing.B) {
			var total time.Duration
			var rss float64
			for range b.N {
				o := startOrthanc(b, map[string]any{}, map[string]any{"DicomAet": "ORTHANC", "ConcurrentJobs": 4})
				start := time.Now()
				storescu(b, "127.0.0.1:"+o.dicom, "ORTHANC", files, assocs)
				total += time.Since(start)
				rss = max(rss, pidPeakRSS(o.cmd.Process.Pid))
				o.cmd.Process.Kill()
			}
			report(b, total)
			b.ReportMetric(rss, "peak-RSS-MB")
		})
		b.Run(fmt.Sprintf("pacsnet/assocs=%d", assocs), func(b *testing.B) {
			var total, cpu time.Duration
			var rss, anon float64
			for range b.N {
				n := benchNode(b, "Bench", func(c *Config) {
					c.DICOM.AEs = []AEConfig{{Title: "BENCHSCU", Host: "127.0.0.1", Port: 104}}
				})
				peakRSS(true)
				cpu0 := cpuTime()
				start := time.Now()
				storescu(b, n.DICOMAddr(), n.cfg.AETitle, files, assocs)
				total += time.Since(start)
				cpu += cpuTime() - cpu0
				rss = max(rss, peakRSS(false))
				anon = max(anon, procStatus("RssAnon"))
				n.Close()
			}
			report(b, total)
			b.ReportMetric(rss, "peak-RSS-MB")
			// Of the resident set, this much is the heap and stacks; the
			// rest is the value log's mapped file pages (page cache).
			b.ReportMetric(anon, "anon-RSS-MB")
			// The node's CPU time (user and system) per instance: what it
			// costs whatever else the machine is doing, where the rate
			// above moves with the load.
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(files)*b.N), "node-CPU-ms/inst")
		})
	}
	// A modality as DCMTK comes, Nagle's algorithm on: it holds back the
	// end of each message until the receiver acknowledges its start,
	// which the node does at once (dimse's quickAck) and Orthanc (with
	// TCP_NODELAY=1 for its own answers, as above) after the kernel's
	// delayed-ACK timer.
	b.Run("orthanc-storescu-nagle/assocs=1", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			o := startOrthanc(b, map[string]any{}, map[string]any{"DicomAet": "ORTHANC", "ConcurrentJobs": 4})
			start := time.Now()
			storescuNagle(b, "127.0.0.1:"+o.dicom, "ORTHANC", files, 1, true)
			total += time.Since(start)
			o.cmd.Process.Kill()
		}
		report(b, total)
	})
	b.Run("pacsnet-storescu-nagle/assocs=1", func(b *testing.B) {
		var total time.Duration
		for range b.N {
			n := benchNode(b, "Bench", func(c *Config) {
				c.DICOM.AEs = []AEConfig{{Title: "BENCHSCU", Host: "127.0.0.1", Port: 104}}
			})
			start := time.Now()
			storescuNagle(b, n.DICOMAddr(), n.cfg.AETitle, files, 1, true)
			total += time.Since(start)
			n.Close()
		}
		report(b, total)
	})
}

func freeBenchPort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitListening(b *testing.B, addr string) {
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s did not listen", addr)
}

// BenchmarkSend sends the generated CT from a node to DCMTK's storescp
// (pacsnet send: C-STORE as an SCU, the path of C-MOVE and of forwarding
// to the local PACS too), once with storescp as it comes (Nagle's
// algorithm on, which holds the second half of each answer until the
// first is acknowledged) and once with TCP_NODELAY=1. The node
// acknowledges at once what arrives (dimse's quickAck), so the two
// should be level; without that, the first ran at ~20 instances/s.
func BenchmarkSend(b *testing.B) {
	if _, err := exec.LookPath("storescp"); err != nil {
		b.Skip("storescp not installed (make deps installs dcmtk)")
	}
	files, size := benchCT(b)
	port := freeBenchPort(b)
	p, _ := strconv.Atoi(port)
	n := benchNode(b, "Sender", func(c *Config) {
		c.DICOM.AEs = []AEConfig{{Title: "STORESCP", Host: "127.0.0.1", Port: p}}
	})
	study := benchImport(b, n, files)
	for _, nagle := range []bool{true, false} {
		b.Run(fmt.Sprintf("storescp/nagle=%v", nagle), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				dir := b.TempDir()
				scp := exec.Command("storescp", "-aet", "STORESCP", "-od", dir, "--accept-all", port)
				if !nagle {
					scp.Env = append(os.Environ(), "TCP_NODELAY=1")
				}
				if err := scp.Start(); err != nil {
					b.Fatal(err)
				}
				waitListening(b, "127.0.0.1:"+port)
				start := time.Now()
				st, err := n.sends.Start(study, "STORESCP", reader{id: "admin", name: "admin"})
				if err != nil {
					b.Fatal(err)
				}
				for st.State == api.SendRunning {
					time.Sleep(5 * time.Millisecond)
					st, _ = n.sends.Status(st.ID)
				}
				total += time.Since(start)
				scp.Process.Kill()
				scp.Wait()
				if st.State != api.SendDone || st.Completed != len(files) {
					b.Fatalf("send: %+v", st)
				}
			}
			b.ReportMetric(float64(len(files)*b.N)/total.Seconds(), "inst/s")
			b.ReportMetric(float64(size*int64(b.N))/1e6/total.Seconds(), "MB/s")
		})
	}
}
