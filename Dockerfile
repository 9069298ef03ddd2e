# syntax=docker/dockerfile:1
# The apikey-operator image: one static-enough binary that serves `run` (the operator),
# `credstore` (the embedded credential store) and `crd`, on a minimal non-root runtime.
#
#   docker build -t ghcr.io/apikey-operator/apikey-operator:0.1.0 .
#
# The Helm chart's default image (charts/apikey-operator/values.yaml) is this repository at the
# chart's appVersion (= the crate version); tests/cluster/chart.rs keeps them in agreement.

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Dependencies first, in a layer of their own that source changes do not invalidate.
COPY Cargo.toml Cargo.lock ./
# The workspace's test-support crate is never built here, but Cargo loads every member's
# manifest (and needs a target in it) to resolve the lock file.
COPY tests/support/Cargo.toml tests/support/
RUN mkdir -p src tests/support/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/support/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin apikey-operator \
    && install -D -m 0755 target/release/apikey-operator /out/apikey-operator

# glibc, libgcc and CA certificates, nothing else: no shell, no package manager.
# Debian 12 (bookworm) matches the builder's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="apikey-operator" \
      org.opencontainers.image.description="Manages API keys in upstream credential stores as Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/apikey-operator/apikey-operator" \
      org.opencontainers.image.ref.name=ghcr.io/apikey-operator/apikey-operator
COPY --from=builder /out/apikey-operator /usr/local/bin/apikey-operator
# A numeric user (the distroless "nonroot" user), so Kubernetes can verify runAsNonRoot.
USER 65532:65532
# /healthz, /readyz, /metrics (run) and the credential store's API (credstore).
EXPOSE 8080 8400
ENTRYPOINT ["/usr/local/bin/apikey-operator"]
CMD ["run"]
