# Tenantry: `make run` starts a server on 127.0.0.1:8080; `make test` runs everything CI runs.
export CGO_ENABLED := 1

.PHONY: build run test test-sqlite test-postgres bench lint

build:
	go build -o bin/tenantry ./cmd/tenantry

run: build
	./bin/tenantry serve --addr 127.0.0.1:8080 --database ./data/tenantry.db

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

# Go benchmarks of the authentication path (parse a key, one indexed lookup).
bench:
	go test -run '^$$' -bench . -benchmem ./keys/

# Static checks: formatting, go vet, staticcheck, and an OpenAPI linter on the contract.
lint:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	npx --yes @redocly/cli@2.77.0 lint --format stylish openapi.yaml
