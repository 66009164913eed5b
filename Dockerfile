# Multi-stage build of the operator: a release binary on a minimal, non-root runtime image.
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
COPY --from=build /src/target/release/kafka-group-operator /usr/local/bin/kafka-group-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kafka-group-operator"]
CMD ["--help"]
