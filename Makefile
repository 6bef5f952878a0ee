# PremiScale build, test and demo entry points. GNU make.
#
#   make build      bin/premiscale
#   make test       start the test services (testenv/up), lint, then every test, serially (the
#                   outage test beside them), and each fuzz target for $(FUZZ_SHORT_TIME)
#   make fuzz       each fuzz target for $(FUZZ_TIME) (FUZZ_TIME=30m make fuzz)
#   make chaos      the chaos suite: the worker killed during scale-out and scale-in, every
#                   dependency restarted, on private services (not part of make test)
#   make unit       the tests that need no service
#   make demo       a group of real VMs growing under load and shrinking back
#   make demo-stop  delete the demo group (its VMs) and stop its worker
#   make bench      benchmarks
#   make bench-scale  the scale benchmarks: 0 → 100 → 0, N groups, check-ins (bench/), warm vs cold real VMs; BENCH=regexp picks some
#   make up / down / status   the test services alone

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
GOBIN := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
# Tools built by go install (temporal, influxd, workflowcheck) live in GOBIN; tests look
# for the temporal CLI on PATH.
export PATH := $(GOBIN):$(PATH)

# workflowcheck is its own module; v0.6.0 is the newest release, tagged a month before
# go.temporal.io/sdk v1.51.0.
WORKFLOWCHECK_VERSION := v0.6.0
WORKFLOWCHECK := $(GOBIN)/workflowcheck

.PHONY: build test lint unit demo demo-stop bench bench-scale clean up down status fuzz fuzz-short chaos

# The binary says what it is (premiscale version): the nearest tag, commits since and a
# -dirty mark from git describe, and the full commit. Outside a git checkout it says "dev"
# and the Go toolchain's own build information fills in what it knows.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BIN ?= bin/premiscale

build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/premiscale

# The outage test (about six minutes, mostly waiting out stopped services) runs on private
# services of its own, so it runs beside the others; its output follows theirs.
OUTAGE_TEST := ^TestGroupCarriesOnThroughOutages$$

test: up lint
	@outage_log="$$(mktemp)"; \
	$(GO) test -count=1 -timeout 20m -run '$(OUTAGE_TEST)' ./worker/ >"$$outage_log" 2>&1 & outage=$$!; \
	status=0; $(GO) test -count=1 -p 1 -timeout 25m -skip '$(OUTAGE_TEST)' ./... || status=$$?; \
	wait "$$outage" || status=$$?; \
	echo "--- $(OUTAGE_TEST) (./worker/, run beside the others):"; cat "$$outage_log"; rm -f "$$outage_log"; \
	exit "$$status"
	$(MAKE) fuzz-short

# Go native fuzz targets, as package:function. Inputs that found bugs are kept in each package's
# testdata/fuzz/<function>, which plain go test runs too.
FUZZ_TARGETS := ./internal/config:FuzzParse ./internal/checkin:FuzzHandler ./internal/cloudinit:FuzzRender
FUZZ_SHORT_TIME ?= 20s
FUZZ_TIME ?= 5m

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SHORT_TIME)

fuzz:
	@for target in $(FUZZ_TARGETS); do \
		pkg="$${target%%:*}"; fn="$${target##*:}"; \
		echo "fuzz $$fn ($$pkg) for $(FUZZ_TIME)"; \
		$(GO) test -count=1 -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_TIME) "$$pkg" || exit 1; \
	done

chaos: up
	$(GO) test -tags chaos -count=1 -p 1 -run TestChaos -v -timeout 60m ./internal/chaos/

lint: $(WORKFLOWCHECK)
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) vet -tags chaos ./internal/chaos/
	$(WORKFLOWCHECK) ./workflows/...

$(WORKFLOWCHECK):
	cd /tmp && $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

unit:
	$(GO) test ./internal/config/... ./internal/policy/... ./workflows/...

demo:
	testenv/demo

demo-stop:
	testenv/demo stop

bench: up
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Not part of `make test`: each benchmark runs the built worker against the real services for
# minutes and prints "BENCH name: numbers" lines (tuned by PREMISCALE_BENCH_* variables, see
# the README's Performance section).
BENCH ?= .
# The warm-versus-cold benchmark boots real VMs (cmd/premiscale, TestBenchWarmPoolRealVMs); it
# runs when BENCH matches its name, as it does by default.
bench-scale: up
	$(GO) vet -tags benchscale ./bench/ ./cmd/premiscale/
	$(GO) test -tags benchscale -count=1 -p 1 -timeout 90m -v -run '$(BENCH)' ./bench/ | grep -E '^(BENCH|---|FAIL|ok|PASS|panic)|_test.go:'
	if grep -qE -- '$(BENCH)' <<< TestBenchWarmPoolRealVMs; then \
		$(GO) test -tags benchscale -count=1 -timeout 75m -v -run '^TestBenchWarmPoolRealVMs$$' ./cmd/premiscale/ | grep -E '^(---|FAIL|ok|PASS|panic)|_test.go:'; \
	fi

# The test services' data (.testenv/) is kept: `make down && rm -rf .testenv` drops it.
clean:
	rm -rf bin
	rm -f coverage.out coverage.html cover.out *.coverprofile
	$(GO) clean -testcache

up:
	testenv/up

down:
	testenv/down

status:
	testenv/status
