# Plumbline: every gate CI runs is `make test`; `.ci/run` calls exactly that.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_STAMP := $(VENV)/.installed-$(shell sha256sum tools/requirements.txt | cut -c1-12)
# Kubernetes versions the rendered manifests are validated against.
K8S_VERSIONS := 1.30.0 1.31.0 1.32.0 1.33.0 1.34.0 1.35.0 1.36.0 1.37.0

.PHONY: test fmt fmt-check lint unit generate generate-check validate tools bench clean-tools

## test: every CI gate (formatting, lints, generated files, tests, manifest validation)
test: tools fmt-check lint generate-check unit validate
	@echo "make test: all gates passed"

## tools: install the real clients the tests use (Python venv with pinned packages, promtool)
tools: $(TOOLS_STAMP) promtool kubectl

.PHONY: kubectl
kubectl:
	@command -v kubectl >/dev/null 2>&1 || { \
		echo "error: kubectl is not on PATH; the end-to-end tests drive it. Install it: https://kubernetes.io/docs/tasks/tools/#kubectl"; \
		exit 1; \
	}

.PHONY: promtool
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
		echo ">> installing promtool (Debian package prometheus)"; \
		if [ "$$(id -u)" != 0 ]; then echo "error: promtool is missing; run: sudo apt-get install prometheus"; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	}

$(TOOLS_STAMP): tools/requirements.txt
	@echo ">> installing test tools into $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

fmt:
	$(CARGO) fmt --all

fmt-check:
	@echo ">> cargo fmt --check"
	$(CARGO) fmt --all --check

lint:
	@echo ">> cargo clippy"
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@echo ">> cargo test"
	PLUMBLINE_VENV=$(abspath $(VENV)) $(CARGO) test --workspace

## generate: rewrite every generated file (CRDs, the chart's CRD copies, deploy/plumbline.yaml,
## the values tables of charts/plumbline/README.md and docs/install.md)
generate: tools
	$(CARGO) run --quiet -p plumbline -- crds --out-dir crds
	$(PY) tools/chart.py render

## generate-check: fail when a generated file is out of date
GENERATED := crds charts/plumbline/crds deploy/plumbline.yaml charts/plumbline/README.md docs/install.md
generate-check: generate
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); \
		echo "error: generated files are out of date; run 'make generate' and commit the result"; \
		exit 1; \
	fi

## validate: check the CRDs, the chart and the Dockerfile with real Helm, kubernetes-validate
## (strict) and promtool. The rendered manifests applied with the real kubectl and promtool on
## scrapes of the agent and controller are cargo tests (crates/cli/tests/deploy_kubectl.rs,
## metrics_lint.rs), run by `unit`.
validate: tools
	@echo ">> kubernetes-validate --strict crds/"
	for v in $(K8S_VERSIONS); do \
		$(VENV)/bin/kubernetes-validate --strict --quiet -k $$v crds/*.yaml; \
	done
	@echo ">> helm lint / render / validate, values tables, Dockerfile"
	$(PY) tools/chart.py check

## bench: every benchmark; rewrites docs/benchmarks.md (BENCH_QUICK=1: smoke run into target/bench-results/)
bench:
	$(CARGO) run --release --quiet -p plumbline-bench -- run

clean-tools:
	rm -rf $(VENV)
