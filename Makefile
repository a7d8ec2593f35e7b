# daskgate — a drop-in Go replacement for dask-gateway-server.
# Versions live in one place each: Go tools here, Python packages in
# e2e/requirements.txt, the Kubernetes test components in internal/testenv/versions.go.
STATICCHECK_VERSION  ?= v0.8.2
PYTHON ?= python3
VENV   ?= .venv
BIN    := bin/daskgate
GO     ?= go
ARGS   ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help build venv deps run test test-go test-e2e check bench examples wasm-fixtures testenv manifests image clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/daskgate
	$(GO) build -o $(BIN) ./cmd/daskgate

# What clusters run (make run, make bench): the pinned dask packages alone, no system
# packages needed. The tests' venv adds the rest of e2e/requirements.txt.
$(VENV)/.runtime: e2e/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $$(grep -E '^(dask-gateway|dask|distributed|bokeh)==' e2e/requirements.txt)
	touch $@

$(VENV)/.installed: e2e/requirements.txt $(VENV)/.runtime | deps
	$(VENV)/bin/pip install --quiet -r e2e/requirements.txt
	touch $@

# One venv per JupyterHub version the hub tests run against (e2e/hub-<version>.txt).
HUB_VERSIONS := 5.5 6.1
$(VENV)/hub-%/.installed: e2e/hub-%.txt $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/hub-$*
	$(VENV)/hub-$*/bin/pip install --quiet -r $<
	touch $@

venv: $(VENV)/.installed $(HUB_VERSIONS:%=$(VENV)/hub-%/.installed) ## create .venv with the pinned e2e/requirements.txt (needs make deps) and one JupyterHub venv per version

deps: ## install the system tools tests drive: chromium, an MIT Kerberos KDC (apt, needs root), configurable-http-proxy (npm)
	hack/install-deps

run: build $(VENV)/.runtime ## run the gateway on 127.0.0.1:8000 (local processes, embedded store); ARGS="--config x.yaml"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $(BIN) serve $(ARGS)

examples: build ## build the WASM examples: the Go module (GOOS=wasip1) and Rego compiled to an OPA wasm bundle
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o examples/wasm/go/handler.wasm ./examples/wasm/go
	mkdir -p examples/wasm/opa
	$(BIN) policy build -o examples/wasm/opa/worker_resources.tar.gz examples/rego/worker_resources

wasm-fixtures: ## rebuild checked-in .wat test fixtures (needs wat2wasm from Debian's wabt)
	wat2wasm wasm/testdata/minimal/minimal.wat -o wasm/testdata/minimal/minimal.wasm

testenv: ## build/cache etcd, kube-apiserver, kube-scheduler, kwok, helm, ... (internal/testenv; cold ~15 min on 2 cores, then ~1 s)
	$(GO) run ./hack/testenv install

manifests: build ## regenerate deploy/ and the chart's CRD (and RBAC) from the Go types
	$(BIN) install-crds --print > deploy/daskclusters.crd.yaml
	cp deploy/daskclusters.crd.yaml charts/dask-gateway/crds/daskclusters.yaml
	$(BIN) install-crds --print-rbac dask > deploy/rbac.yaml

IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
image: ## build the gateway's OCI image without Docker: out/image/oci (OCI layout) and one docker-load tarball per platform; reproducible
	$(GO) run ./hack/image build -o out/image -platforms $(IMAGE_PLATFORMS)

push: ## push the image built by make image: make push REF=ghcr.io/you/daskgate:0.1.0
	$(GO) run ./hack/image push -o out/image -ref $(REF)

test: deps build venv examples testenv test-go test-e2e ## everything: Go tests with -race (incl. a real API server), then e2e with the real client

test-go: ## Go unit and integration tests (-race)
	$(GO) test -race -count=1 -timeout 20m ./...

test-e2e: build venv examples ## pytest e2e/ against bin/daskgate with real dask processes
	DASKGATE_BIN="$(CURDIR)/$(BIN)" $(VENV)/bin/python -m pytest -v e2e $(PYTEST_ARGS)

check: ## gofmt, go vet, staticcheck, go mod tidy, no tracked file over 1 MB; fails on a dirty tree
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' | awk '$$1 > 1048576 {print $$2}'); \
	test -z "$$big" || (echo "tracked files over 1 MB (build outputs belong in .gitignore):"; echo "$$big"; exit 1)
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) mod tidy
	@git diff --exit-code -- go.mod go.sum || (echo "go.mod/go.sum not tidy"; exit 1)

bench: build $(VENV)/.runtime ## API, cluster-start, proxy and decision benchmarks (prints numbers)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(GO) run ./bench/api -bin $(BIN)
	$(GO) run ./bench/proxy
	$(GO) test -run xxx -bench . -benchtime 20000x ./policy ./wasm

clean: ## remove build outputs and the venv
	rm -rf bin $(VENV)
