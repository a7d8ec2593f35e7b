# daskgate — a drop-in Go replacement for dask-gateway-server.
# Tool and package versions live here, in one place.
DASK_GATEWAY_VERSION ?= 2026.3.0
STATICCHECK_VERSION  ?= v0.8.2
PYTHON ?= python3
VENV   ?= .venv
BIN    := bin/daskgate
GO     ?= go
ARGS   ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
KUBE_TESTENV ?= ../shared/tools/kube-testenv
.PHONY: help build venv run test test-go test-e2e check bench examples wasm-fixtures kube-testenv manifests clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/daskgate
	$(GO) build -o $(BIN) ./cmd/daskgate

$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet "dask-gateway==$(DASK_GATEWAY_VERSION)" distributed bokeh pytest
	touch $@

venv: $(VENV)/.installed ## create .venv with dask-gateway, distributed, bokeh, pytest

run: build venv ## run the gateway on 127.0.0.1:8000 (local processes, embedded store); ARGS="--config x.yaml"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $(BIN) serve $(ARGS)

examples: build ## build the WASM examples: the Go module (GOOS=wasip1) and Rego compiled to an OPA wasm bundle
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o examples/wasm/go/handler.wasm ./examples/wasm/go
	mkdir -p examples/wasm/opa
	$(BIN) policy build -o examples/wasm/opa/worker_resources.tar.gz examples/rego/worker_resources

wasm-fixtures: ## rebuild checked-in .wat test fixtures (needs wat2wasm from Debian's wabt)
	wat2wasm wasm/testdata/minimal/minimal.wat -o wasm/testdata/minimal/minimal.wasm

kube-testenv: ## build/cache the real kube-apiserver, etcd, kwok (cold ~16 min on 2 cores, then ~0.1 s)
	$(KUBE_TESTENV) install

manifests: build ## regenerate deploy/ (CRD and RBAC) from the Go types
	$(BIN) install-crds --print > deploy/daskclusters.crd.yaml
	$(BIN) install-crds --print-rbac dask > deploy/rbac.yaml

test: build venv examples kube-testenv test-go test-e2e ## everything: Go tests with -race (incl. a real API server), then e2e with the real client

test-go: ## Go unit and integration tests (-race)
	KUBE_TESTENV="$(abspath $(KUBE_TESTENV))" $(GO) test -race -count=1 -timeout 20m ./...

test-e2e: build venv examples ## pytest e2e/ against bin/daskgate with real dask processes
	DASKGATE_BIN="$(CURDIR)/$(BIN)" $(VENV)/bin/python -m pytest -v e2e $(PYTEST_ARGS)

check: ## gofmt, go vet, staticcheck, go mod tidy; fails on a dirty tree
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || (echo "go.mod/go.sum not tidy"; exit 1)

bench: build venv ## API, cluster-start, proxy and decision benchmarks (prints numbers)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(GO) run ./bench/api -bin $(BIN)
	$(GO) run ./bench/proxy
	$(GO) test -run xxx -bench . -benchtime 20000x ./policy ./wasm

clean: ## remove build outputs and the venv
	rm -rf bin $(VENV)
