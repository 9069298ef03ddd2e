# apikey-operator: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: demo bench test crds check-generated envtest conformance-venv credstore-conformance

## Runs the operator's whole job locally: a control plane, the embedded credential store,
## the operator and examples/; prints what converged and keeps running until Ctrl-C.
demo: envtest
	cargo run --locked -- demo --assets "$$(tests/envtest/setup.sh | tail -n 1)"

## Convergence benchmark against the floor (OBJECTS=1000 by default); prints figures.
OBJECTS ?= 1000
bench: envtest
	cargo build --release --locked --bin apikey-operator
	KUBEBUILDER_ASSETS="$$(tests/envtest/setup.sh | tail -n 1)" \
	cargo bench --locked --bench convergence -- --objects $(OBJECTS)

## Runs the whole test suite against a real kube-apiserver + etcd (built on first use).
test: envtest check-generated conformance-venv credstore-conformance
	KUBEBUILDER_ASSETS="$$(tests/envtest/setup.sh | tail -n 1)" \
	EDGEGRID_PYTHON_DIR="$$(tests/conformance/venv.sh | tail -n 1)" \
	cargo test --all-targets --locked

## Builds (once) and prints the directory holding kube-apiserver, etcd and kubectl.
envtest:
	@tests/envtest/setup.sh | tail -n 1

## Installs (once) the vendors' Python SDKs whose test vectors the conformance tests read.
conformance-venv:
	@tests/conformance/venv.sh | tail -n 1

## Runs the vendors' published SDKs (Trend's deep-security-api, Akamai's edgegrid-python,
## ZenML's models) against the embedded credential store; fails if their venv cannot be built.
credstore-conformance:
	cargo build --locked --bin apikey-operator
	venv="$$(tests/credstore/conformance/setup.sh | tail -n 1)"; \
	CREDSTORE_BIN="$${CARGO_TARGET_DIR:-target}/debug/apikey-operator" \
	"$$venv/bin/python" -m pytest -p no:cacheprovider tests/credstore/conformance

## Regenerates crds/ from the Rust types.
crds:
	cargo run --quiet --locked -- crd --output-dir crds

## Fails when a generated file differs from what the code generates.
check-generated: crds
	git diff --exit-code -- crds/
