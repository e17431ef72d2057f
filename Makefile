# pacsnet — the two commands of the README are `make demo` and `make test`.
# Both call `make deps`, which installs what they need on Debian.

GO        ?= go
BIN       := bin/pacsnet
APT_DEPS  := dcmtk
GOFLAGS_BUILD := -trimpath

.PHONY: all deps build demo test vet bench fuzz clean

all: build

# deps installs the Debian packages the tests and the demo use (DCMTK's
# dcmdump checks our exported files) and downloads the Go modules.
deps:
	@command -v $(GO) >/dev/null || { echo "deps: Go 1.26 is required (https://go.dev/dl)"; exit 1; }
	@missing=""; for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing with apt-get"; \
		SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(GO) mod download

build: deps
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/pacsnet
	$(GO) build $(GOFLAGS_BUILD) -o bin/pacsnet-demo ./cmd/pacsnet-demo

# demo: three facilities on loopback, real DICOM in, grant, fetch, verified.
demo: build
	./bin/pacsnet-demo --bin $(BIN) --corpus testdata/dicom

vet:
	$(GO) vet ./...

# test: vet and every test with the race detector, including the
# end-to-end test that runs real `pacsnet serve` processes.
test: deps vet
	$(GO) test -race -timeout 20m ./...

# bench: transfer and parse benchmarks; figures go to docs/performance.md.
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 3x ./exchange/ ./dicomio/ ./crypto/

# fuzz: a short run of each fuzz target (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz: deps
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./dicomio/
	$(GO) test -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./crypto/

clean:
	rm -rf bin
