# pacsnet — the two commands of the README are `make demo` and `make test`.
# Both call `make deps`, which installs what they need on Debian.

GO        ?= go
BIN       := bin/pacsnet
APT_DEPS  := dcmtk orthanc orthanc-dicomweb chromium rsyslog rsyslog-gnutls
JS_DIR    := interop/js
WEB_DIR   := web/ui
# Debian 12's npm (9.2) fails on the lockfile's overrides (an npm bug fixed
# in 10); npm 10 still runs on Debian 12's Node.js 18.
NPM_FOR_OLD := npm@10.9.4
GOFLAGS_BUILD := -trimpath

.PHONY: all deps build web demo demo-web netsim screenshots test vet bench bench-memory fuzz clean

all: build

# deps installs the Debian packages the tests and the demo use (DCMTK's
# dcmdump checks our exported files, its storescu/echoscu and Orthanc are
# the DICOM peers of the node's tests; Orthanc's DICOMweb plugin and
# Chromium are the DICOMweb reference server and the browser of the
# interop tests) and downloads the Go modules. The Debian orthanc service
# is disabled: tests start their own Orthanc. It then installs the npm
# packages of the interop harness (dicomweb-client, playwright-core, the
# OHIF viewer's build) exactly as interop/js/package-lock.json pins them,
# with Node.js and npm from Debian where the machine has none; npm ci runs
# only when node_modules is missing or older than the lockfile.
deps:
	@command -v $(GO) >/dev/null || { echo "deps: Go 1.26 is required (https://go.dev/dl)"; exit 1; }
	@missing=""; for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing with apt-get"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		case "$$missing" in *orthanc*) \
			echo "deps: stopping and disabling the orthanc service (tests run their own Orthanc on loopback)"; \
			$$SUDO systemctl disable --now orthanc >/dev/null 2>&1 || true;; \
		esac; \
	fi
	@$(GO) mod download
	@missing=""; command -v node >/dev/null || missing="$$missing nodejs"; command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing with apt-get"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if [ ! -f $(JS_DIR)/node_modules/.package-lock.json ] || [ $(JS_DIR)/package-lock.json -nt $(JS_DIR)/node_modules/.package-lock.json ]; then \
		echo "deps: npm ci in $(JS_DIR)"; NPM=npm; \
		if [ "$$(npm --version | cut -d. -f1)" -lt 10 ]; then \
			echo "deps: npm $$(npm --version) cannot read the lockfile's overrides; running $(NPM_FOR_OLD) through npx"; \
			NPM="npx --yes $(NPM_FOR_OLD)"; \
		fi; \
		$$NPM ci --prefix $(JS_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error && touch $(JS_DIR)/node_modules/.package-lock.json; \
	fi
	@if [ ! -f $(WEB_DIR)/node_modules/.package-lock.json ] || [ $(WEB_DIR)/package-lock.json -nt $(WEB_DIR)/node_modules/.package-lock.json ]; then \
		echo "deps: npm ci in $(WEB_DIR)"; NPM=npm; \
		if [ "$$(npm --version | cut -d. -f1)" -lt 10 ]; then NPM="npx --yes $(NPM_FOR_OLD)"; fi; \
		$$NPM ci --prefix $(WEB_DIR) --no-audit --no-fund --loglevel=error && touch $(WEB_DIR)/node_modules/.package-lock.json; \
	fi

# web builds the web app (web/ui: the pages and the Cornerstone3D viewer
# with its WebAssembly codecs) with esbuild into web/dist, which the Go
# package web embeds: the binary alone serves the app, offline.
web: deps
	cd $(WEB_DIR) && node build.mjs

build: deps web
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/pacsnet
	$(GO) build $(GOFLAGS_BUILD) -o bin/pacsnet-demo ./cmd/pacsnet-demo

# demo: three facilities on loopback, real DICOM in, grant, fetch, verified.
demo: build
	./bin/pacsnet-demo --bin $(BIN) --corpus testdata/dicom

# demo-web: the same demo, then the three nodes keep running so that you
# can open their web apps (addresses and a password printed); Ctrl-C stops them.
demo-web: build
	./bin/pacsnet-demo --bin $(BIN) --corpus testdata/dicom --serve

# netsim: a short run of every netsim scenario (45 s on 2 quiet cores,
# 4 minutes on a loaded machine): regional (also with jitter and loss on
# every link), multisource, fanout, scale (a small sweep, each count in a
# process of its own), partition and churn. The reports (JSON, text,
# Markdown with PNG charts) go to $(NETSIM_OUT); the full-size runs and
# their figures are in docs/netsim.md. It builds pacsnet on its own
# (bin/pacsnet-netsim): a simulation needs neither the web app nor the
# Debian packages that build does.
NETSIM_OUT ?= netsim-out
NETSIM = ./bin/pacsnet-netsim netsim --seed 1
netsim:
	$(GO) build $(GOFLAGS_BUILD) -o bin/pacsnet-netsim ./cmd/pacsnet
	$(NETSIM) --scenario regional --nodes 8 --fetches 3 --max-images 150 --out $(NETSIM_OUT)
	$(NETSIM) --scenario regional --nodes 8 --fetches 3 --max-images 150 --jitter 2ms --loss 0.05 --out $(NETSIM_OUT)/impaired
	$(NETSIM) --scenario multisource --nodes 4 --out $(NETSIM_OUT)
	$(NETSIM) --scenario fanout --nodes 50 --out $(NETSIM_OUT)
	$(NETSIM) --scenario scale --sweep 20,50,100 --out $(NETSIM_OUT)
	$(NETSIM) --scenario partition --out $(NETSIM_OUT)
	$(NETSIM) --scenario churn --nodes 4 --fetches 2 --max-images 150 --out $(NETSIM_OUT)

# screenshots refreshes docs/screenshots from the web app's browser test
# (two real nodes, Debian's headless Chromium): the README shows them.
screenshots: build
	PACSNET_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestWebApp$$' ./cmd/pacsnet/

vet:
	$(GO) vet ./...

# test: vet, a short fuzzing pass over every decoder of untrusted input,
# then every test with the race detector (including the end-to-end test
# that runs real `pacsnet serve` processes, and the CLI scripts).
test: deps web vet
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s
	$(GO) test -race -timeout 20m ./...

# bench: transfer, fetch, import, parse and crypto benchmarks, with the raw
# loopback TCP baseline measured in the same run; bench.out keeps the
# figures, docs/performance.md the latest table.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -count 3 ./exchange/ ./node/ | tee bench.out
	$(GO) test -run '^$$' -bench . ./dicomio/ ./crypto/ ./consent/ | tee -a bench.out

# bench-memory: a 2.1 GB CT fetched between real `pacsnet serve` processes,
# by one grantee and then by four at once: the peak resident set of the
# fetching node and of the holder (issue 9's 150 MB bound). It writes
# about 15 GB under the temp dir and takes a few minutes;
# PACSNET_BENCH_MEM_SLICES=N makes the study smaller.
bench-memory: build
	$(GO) test -run '^$$' -bench FetchMemory -benchtime 1x -timeout 30m -v ./cmd/pacsnet/ | tee bench-memory.out

# fuzz: every fuzz target for FUZZTIME each (30s by default; `make test`
# runs them for 10s each). A failing input is written to the package's
# testdata/fuzz and then replayed by every plain `go test`.
FUZZTIME ?= 30s
FUZZ_TARGETS := dicomio:FuzzParse dicomio:FuzzParseDataset crypto:FuzzOpen \
	crypto:FuzzOpenEnvelope crypto:FuzzStudyKeyUnwrap crypto:FuzzParseStudyKey \
	consent:FuzzVerifySignedGrant consent:FuzzParseCheckpoint consent:FuzzAccessRequest exchange:FuzzBlockRequest exchange:FuzzGrantFrame \
	internal/wire:FuzzParseInvite internal/wire:FuzzParseManifest internal/wire:FuzzOpenAsk internal/wire:FuzzQueryAnswer internal/wire:FuzzHoldersAnswer \
	dicomio:FuzzParseStream dicomio:FuzzParseStreamSink internal/uid:FuzzCheck \
	dicomio/dimse:FuzzDecodePDU dicomio/dimse:FuzzDecodeCommand dicomio:FuzzDecodeDataset \
	dicomio:FuzzDescribe dicomio/dicomweb:FuzzParseQuery dicomio/dicomweb:FuzzMultipart \
	dicomio/dicomweb:FuzzParseAccept
# On a loaded machine Go's fuzzer sometimes ends a run with "context
# deadline exceeded" of its own, without an input that fails: that is
# retried once and then reported as a warning, never hidden as a pass of
# a real finding (a finding writes "Failing input written to ...").
fuzz: deps
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		for try in 1 2; do \
			echo "fuzz $$pkg $$fn for $(FUZZTIME)"; \
			if out=$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5x ./$$pkg/ 2>&1); then \
				echo "$$out" | tail -1; break; fi; \
			if echo "$$out" | grep -q "context deadline exceeded" && ! echo "$$out" | grep -q "Failing input written"; then \
				echo "fuzz $$fn: the fuzzer timed itself out under load (no failing input)"; \
				[ $$try -eq 1 ] && continue; echo "fuzz $$fn: WARNING: timed out twice without a finding"; break; \
			fi; \
			echo "$$out"; exit 1; \
		done; \
	done

clean:
	rm -rf bin
