# apikey-operator: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: demo bench test lint crds docs check-generated envtest helm kstatus conformance-venv argocd-venv credstore-conformance akamai-sdk image image-smoke krew

## Runs the operator's whole job locally: a control plane, the embedded credential store,
## the operator and examples/; prints what converged and keeps running until Ctrl-C.
demo: envtest
	cargo run --locked -- demo --assets "$$(tests/envtest/setup.sh | tail -n 1)"

## Convergence benchmark against the floor (OBJECTS=1000 by default); prints figures.
## BENCH_ARGS adds the benchmark's flags, e.g. BENCH_ARGS=--noisy-neighbour for that scenario.
OBJECTS ?= 1000
BENCH_ARGS ?=
bench: envtest
	cargo build --release --locked --bin apikey-operator
	KUBEBUILDER_ASSETS="$$(tests/envtest/setup.sh | tail -n 1)" \
	cargo bench --locked --bench convergence -- --objects $(OBJECTS) $(BENCH_ARGS)

## Runs the whole test suite against a real kube-apiserver + etcd (built on first use).
test: lint envtest helm kstatus check-generated conformance-venv argocd-venv credstore-conformance akamai-sdk krew alerts
	KUBEBUILDER_ASSETS="$$(tests/envtest/setup.sh | tail -n 1)" \
	HELM_BIN="$$(tests/envtest/helm.sh | tail -n 1)" \
	EDGEGRID_PYTHON_DIR="$$(tests/conformance/venv.sh | tail -n 1)" \
	ARGOCD_LUA_PYTHON="$$(tests/argocd/venv.sh | tail -n 1)" \
	KSTATUS_BIN="$$(tests/kstatus/build.sh | tail -n 1)" \
	ZENML_VENV="$$(tests/credstore/conformance/setup.sh | tail -n 1)" \
	cargo test --all-targets --locked

## The lint gates CI holds every change to: formatting and clippy with warnings as errors.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## Builds (once) and prints the directory holding kube-apiserver, etcd and kubectl.
envtest:
	@tests/envtest/setup.sh | tail -n 1

## Builds (once) and prints the path of the kstatus tool (sigs.k8s.io/cli-utils) the health tests use.
kstatus:
	@tests/kstatus/build.sh | tail -n 1

## Builds (once) and prints the path of the helm binary the chart tests use.
helm:
	@tests/envtest/helm.sh | tail -n 1

## Checks the chart's alert rules and dashboard with promtool (built on first use).
.PHONY: alerts
alerts:
	tests/alerts/check.sh

## Installs (once) the vendors' Python SDKs whose test vectors the conformance tests read.
conformance-venv:
	@tests/conformance/venv.sh | tail -n 1

## Installs (once) the Lua 5.1 interpreter (lupa) the Argo CD health-check tests run the script with.
argocd-venv:
	@tests/argocd/venv.sh | tail -n 1

## Runs the vendors' published SDKs (Trend's deep-security-api, Akamai's edgegrid-python,
## ZenML's models) against the embedded credential store; fails if their venv cannot be built.
credstore-conformance:
	cargo build --locked --bin apikey-operator
	venv="$$(tests/credstore/conformance/setup.sh | tail -n 1)"; \
	CREDSTORE_BIN="$${CARGO_TARGET_DIR:-target}/debug/apikey-operator" \
	"$$venv/bin/python" -m pytest -p no:cacheprovider tests/credstore/conformance

## Drives the credential store's Akamai IAM emulation through Akamai's official Go SDK
## (edgegrid-golang pkg/iam, built on first use): one line per check, fails if any fails.
akamai-sdk:
	cargo build --locked --bin apikey-operator
	bin="$$(tests/akamai-sdk/build.sh | tail -n 1)"; \
	"$$bin" --credstore-bin "$${CARGO_TARGET_DIR:-target}/debug/apikey-operator"

## Validates the kubectl plugin's krew manifest and installs it into a scratch krew root.
krew: envtest
	tests/krew/check.sh

## Regenerates crds/ from the Rust types, and the Helm chart's copy of them.
crds:
	cargo run --quiet --locked -- crd --output-dir crds
	rm -f charts/apikey-operator/crds/*.yaml
	cp crds/*.yaml charts/apikey-operator/crds/

## Regenerates docs/reference/ (one page per kind) from the CRD schema.
docs:
	cargo run --quiet --locked -- docs --output-dir docs/reference

## Fails when a generated file differs from what the code generates.
check-generated: crds docs
	git diff --exit-code -- crds/ charts/apikey-operator/crds/ docs/reference/

## Builds the container image (needs a Docker engine and access to docker.io and gcr.io).
image:
	docker build -t ghcr.io/apikey-operator/apikey-operator:$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1) .

## Checks the image's runtime stage offline (root and buildah; no Docker engine or registry).
image-smoke:
	cargo build --locked
	tests/image/runtime-smoke.sh
