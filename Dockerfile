# signpost: a production image. Multi-stage: build a release binary, then copy it alone into a
# slim runtime image that runs as a non-root user allowed to bind port 53.
#
#   docker build -t signpost .
#   docker run -p 53:53/udp -p 53:53/tcp -p 8500:8500 -v $PWD/zones:/etc/signpost/zones:ro signpost
#
# The image has cluster mode: `-e SIGNPOST_STORE=etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379`.
#
# `--target examples` builds the runnable examples (order_service, srv_client, gateway) into an
# image of their own, used by examples/compose.yaml.

FROM rust:1-bookworm AS builder
WORKDIR /src
# protoc: etcd-client (cluster mode, Cargo feature `cluster`) compiles etcd's protobuf files.
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# (The manifest names tests/it/main.rs, so a stand-in must exist for cargo to read it.)
RUN mkdir -p src tests/it && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --bin signpost --features cluster \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin signpost --features cluster

FROM builder AS examples-builder
COPY examples ./examples
RUN cargo build --release --locked --examples

FROM debian:bookworm-slim AS examples
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10001 app
COPY --from=examples-builder /src/target/release/examples/order_service /src/target/release/examples/srv_client /src/target/release/examples/gateway /usr/local/bin/
USER app
CMD ["order_service"]

FROM debian:bookworm-slim AS runtime
# ca-certificates: HTTPS health checks. libcap2-bin only long enough to set the capability.
COPY --from=builder /src/target/release/signpost /usr/local/bin/signpost
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
    && setcap cap_net_bind_service=+ep /usr/local/bin/signpost \
    && apt-get purge -y libcap2-bin && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --uid 10053 signpost \
    && mkdir -p /etc/signpost/zones /var/lib/signpost \
    && chown signpost:signpost /var/lib/signpost
USER signpost
# Every flag has a SIGNPOST_* variable; override any of these with -e.
ENV SIGNPOST_DNS_ADDR=0.0.0.0:53 \
    SIGNPOST_HTTP_ADDR=0.0.0.0:8500 \
    SIGNPOST_ZONES=/etc/signpost/zones \
    SIGNPOST_DATA_DIR=/var/lib/signpost \
    SIGNPOST_API=http://127.0.0.1:8500
EXPOSE 53/udp 53/tcp 8500
VOLUME ["/etc/signpost/zones", "/var/lib/signpost"]
# The built-in check: no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["signpost", "healthcheck"]
# SIGTERM (docker stop) is graceful: /readyz turns 503, requests drain, exit 0 within 5 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["signpost"]
CMD ["serve"]
