# The test command CI runs (see .ci/run) and the README names.
GO ?= go

.PHONY: test build vet bench

test:
	$(GO) test -count=1 -timeout 20m ./...

build:
	$(GO) build -o bin/keyhold ./cmd/keyhold

vet:
	$(GO) vet ./...

bench:
	$(GO) run ./cmd/keyhold bench
