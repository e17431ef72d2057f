package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// BenchmarkDICOMweb serves the generated CT (benchCT: 500 slices,
// 512×512) over DICOMweb from a pacsnet node and from Orthanc with its
// DICOMweb plugin, in the same run: WADO-RS of the whole study, QIDO-RS
// of its instances, WADO-RS metadata (pacsnet: first request, which reads
// every instance, and then from its cache). docs/performance.md has the
// table.
func BenchmarkDICOMweb(b *testing.B) {
	paths, size := benchCT(b)
	first, err := os.ReadFile(paths[0])
	if err != nil {
		b.Fatal(err)
	}
	inst, err := dicomio.Parse(first, dicomio.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	study := inst.StudyInstanceUID

	n := benchNode(b, "Bench")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if r := n.ingest.Import(context.Background(), data); r.Outcome != OutcomeStored {
			b.Fatalf("import: %+v", r)
		}
	}
	token := n.keys.apiToken
	pacsnet := "http://" + n.HTTPAddr() + "/dicom-web"

	var orthancBase string
	if _, err := os.Stat("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"); err == nil {
		o := startOrthanc(b, map[string]any{}, map[string]any{"Plugins": []string{"/usr/share/orthanc/plugins/libOrthancDicomWeb.so"}})
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := o.rest("POST", "/instances", data); err != nil {
				b.Fatal(err)
			}
		}
		orthancBase = "http://127.0.0.1:" + o.http + "/dicom-web"
	}

	get := func(b *testing.B, url, tok, accept string) int64 {
		req, _ := http.NewRequest("GET", url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		nb, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		return nb
	}
	type server struct{ name, base, tok string }
	servers := []server{{"pacsnet", pacsnet, token}}
	if orthancBase != "" {
		servers = append(servers, server{"orthanc", orthancBase, ""})
	}
	for _, s := range servers {
		b.Run("wado-study/"+s.name, func(b *testing.B) {
			var bytes int64
			start := time.Now()
			for range b.N {
				bytes += get(b, s.base+"/studies/"+study, s.tok, `multipart/related; type="application/dicom"; transfer-syntax=*`)
			}
			el := time.Since(start)
			b.ReportMetric(float64(el.Milliseconds())/float64(b.N), "ms/study")
			b.ReportMetric(float64(bytes)/1e6/el.Seconds(), "MB/s")
			_ = size
		})
		b.Run("qido-instances/"+s.name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				get(b, s.base+"/studies/"+study+"/instances", s.tok, "application/dicom+json")
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "ms/query")
		})
		b.Run("metadata/"+s.name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				get(b, s.base+"/studies/"+study+"/metadata", s.tok, "application/dicom+json")
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "ms/study")
		})
	}
}

// BenchmarkQIDOStudies pages through 10,000 studies (one small instance
// each) with QIDO-RS, limit=100, at offsets across the archive; the
// target is under 50 ms a page.
func BenchmarkQIDOStudies(b *testing.B) {
	n := benchNode(b, "Bench")
	const studies = 10000
	for i := range studies {
		_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 8, Cols: 8, Seed: int64(i + 1), PatientName: fmt.Sprintf("Patient^%05d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if r := n.ingest.Import(context.Background(), files[0].Data); r.Outcome != OutcomeStored {
			b.Fatalf("import: %+v", r)
		}
	}
	base := "http://" + n.HTTPAddr() + "/dicom-web"
	page := func(b *testing.B, query string) {
		req, _ := http.NewRequest("GET", base+"/studies?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+n.keys.apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "[{") {
			b.Fatalf("QIDO: %d %.200s", resp.StatusCode, body)
		}
	}
	b.Run("page-of-100", func(b *testing.B) {
		start := time.Now()
		for i := range b.N {
			page(b, fmt.Sprintf("limit=100&offset=%d", (i*100)%studies))
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "ms/page")
	})
	// The web app's first page: the worklist (local and shared studies in
	// one list, newest first) as a signed-in clinician's browser asks
	// for it; the target is under 1 s (issue 11).
	b.Run("web-worklist-first-page", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/api/v1/worklist?limit=50", nil)
			req.Header.Set("Authorization", "Bearer "+n.keys.apiToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"total": 10000`) {
				b.Fatalf("worklist: %d %.200s", resp.StatusCode, body)
			}
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "ms/page")
	})
	b.Run("patient-name-wildcard", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			page(b, "PatientName=Patient%5E0999*&limit=100")
		}
		b.ReportMetric(float64(time.Since(start).Microseconds())/1e3/float64(b.N), "ms/page")
	})
}
