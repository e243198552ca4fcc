# Tenantry: `make run` starts a server (on 127.0.0.1:8080 by default); `make test` runs everything
# CI runs.
export CGO_ENABLED := 1

# `make run ADDR=127.0.0.1:9090 DATABASE=./data/other.db`: each is passed to serve as its flag
# only when given (on make's command line or in the environment), so that otherwise
# TENANTRY_ADDR and TENANTRY_DATABASE apply, and then the program's defaults. ADDR wins over
# TENANTRY_ADDR, as a flag wins over its variable.
ADDR ?=
DATABASE ?=

.PHONY: build run test test-sqlite test-postgres bench soak lint

build:
	go build -o bin/tenantry ./cmd/tenantry

run:
	@echo "== building bin/tenantry: the first build compiles SQLite (cgo), which takes minutes on 2 cores; later builds take seconds"
	@$(MAKE) --no-print-directory build
	./bin/tenantry serve$(if $(ADDR), --addr $(ADDR))$(if $(DATABASE), --database $(DATABASE))

# The whole suite: formatting, vet, then every test against SQLite and, when
# TENANTRY_TEST_POSTGRES_URL names a PostgreSQL database, again against PostgreSQL (each
# test in a schema of its own).
test:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	@$(MAKE) --no-print-directory test-sqlite
	@if [ -n "$$TENANTRY_TEST_POSTGRES_URL" ]; then $(MAKE) --no-print-directory test-postgres; \
	else echo "PostgreSQL half SKIPPED: set TENANTRY_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run it"; fi

test-sqlite:
	@echo "== tests on SQLite"
	@start=$$(date +%s); TENANTRY_TEST_BACKEND=sqlite go test -race -count=1 ./... && echo "== SQLite half passed in $$(( $$(date +%s) - start )) s"

test-postgres:
	@echo "== tests on PostgreSQL ($${TENANTRY_TEST_POSTGRES_URL%%\?*})"
	@start=$$(date +%s); TENANTRY_TEST_BACKEND=postgres go test -race -count=1 ./... && echo "== PostgreSQL half passed in $$(( $$(date +%s) - start )) s"

# The performance benchmark of issue 6, on loopback: the Go benchmarks of the authentication
# path (parse a key, authenticate a key, authenticate a token: ns/op, allocs/op), then wrk
# against a bare Gin handler and the real server (built without -race) seeded with 10,000 and
# then 1,000,000 keys, and the provisioning rate; it prints one table (see README, Performance).
# Everything it writes goes to a temporary directory removed at the end, whatever happens.
bench:
	@start=$$(date +%s); \
	go test -run '^$$' -bench . -benchmem ./keys/ || exit 1; \
	if ! command -v wrk >/dev/null 2>&1; then \
		echo "== wrk is not installed: installing it from Debian (apt-get update && apt-get install -y wrk)"; \
		sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo=sudo; fi; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq wrk || { echo "could not install wrk"; exit 1; }; \
	fi; \
	dir=$$(mktemp -d "$${TMPDIR:-/tmp}/tenantry-bench.XXXXXX") || exit 1; \
	trap 'rm -rf "$$dir"' EXIT INT TERM; \
	TMPDIR="$$dir" go test -tags bench -run '^TestBench$$' -count=1 -v -timeout 15m ./cmd/tenantry/; status=$$?; \
	echo "== make bench took $$(( $$(date +%s) - start )) s"; exit $$status

# The mixed soak of issue 15 (not part of make test): SOAK_DURATION (default 10m) of reads with
# keys and tokens, provisioning, key rotation and revocation, webhook deliveries to a local
# receiver and idempotent retries, from 8 workers against the real server (built without
# -race) on loopback; a row a minute (req/s, p99, server RSS and open fds, 5xx), then a check
# through the API that everything acknowledged is there once, every revoked key refused and
# every event delivered. SOAK_DATABASE=postgres runs it on TENANTRY_TEST_POSTGRES_URL (in a
# schema of its own). Everything it writes goes to a temporary directory removed at the end.
SOAK_DURATION ?= 10m
SOAK_DATABASE ?=
soak:
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/tenantry-soak.XXXXXX") || exit 1; \
	trap 'rm -rf "$$dir"' EXIT INT TERM; \
	TMPDIR="$$dir" SOAK_DURATION="$(SOAK_DURATION)" SOAK_DATABASE="$(SOAK_DATABASE)" \
		go test -tags soak -run '^TestSoak$$' -count=1 -v -timeout 3h ./cmd/tenantry/

# Static checks: formatting, go vet, staticcheck, and an OpenAPI linter on the contract.
lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	npx --yes @redocly/cli@2.77.0 lint --format stylish openapi.yaml
