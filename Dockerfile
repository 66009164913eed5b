# Multi-stage build of the operator: a release binary on a minimal, non-root runtime image (distroless cc:
# glibc, libgcc, CA certificates, no shell, no package manager).
#   docker build -t kafka-group-operator .        (or: buildah bud -t kafka-group-operator .)
# tests/image.rs builds this file unchanged with buildah, lints it with hadolint, and runs the image read-only.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY vendor ./vendor
# Cargo.toml names these targets (the dev environment and the benchmark); cargo wants their files present.
COPY scripts/dev_env.rs ./scripts/dev_env.rs
COPY benches ./benches
COPY tests/support ./tests/support
RUN cargo build --release --locked --bin kafka-group-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="kafka-group-operator" \
      org.opencontainers.image.description="A Kubernetes operator for Apache Kafka consumer groups" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /src/target/release/kafka-group-operator /usr/local/bin/kafka-group-operator
USER 65532:65532
# /healthz, /readyz and /metrics; 9092 for the embedded broker when a KafkaCluster asks for one.
EXPOSE 8080 9092
ENTRYPOINT ["/usr/local/bin/kafka-group-operator"]
CMD ["--help"]
