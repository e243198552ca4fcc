# Tenantry: `make run` starts a server on 127.0.0.1:8080; `make test` runs everything CI runs.
export CGO_ENABLED := 1

.PHONY: build run test bench

build:
	go build -o bin/tenantry ./cmd/tenantry

run: build
	./bin/tenantry serve --addr 127.0.0.1:8080 --database ./data/tenantry.db

test:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go test -race -count=1 ./...

# Go benchmarks of the authentication path (parse a key, one indexed lookup).
bench:
	go test -run '^$$' -bench . -benchmem ./keys/
