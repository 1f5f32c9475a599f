# The NexusSale server, built in one stage and run from a slim one.
#   docker build -t nexussale-server .
#   docker run -p 3000:3000 -e NEXUSSALE_SALES=ps5=100 nexussale-server

FROM rust:1.95-bookworm AS build
# librdkafka is built from source by rdkafka-sys (configure + make), with the system's OpenSSL
# for Kafka's TLS and SASL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential zlib1g-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p nexussale-server --bin nexussale-server \
    && cp target/release/nexussale-server /usr/local/bin/

FROM debian:bookworm-slim
# curl: the health check; zlib: librdkafka's compression; libssl3: Kafka's TLS and SASL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl zlib1g libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 nexussale
COPY --from=build /usr/local/bin/nexussale-server /usr/local/bin/nexussale-server
USER nexussale
ENV NEXUSSALE_LISTEN=0.0.0.0:3000 \
    RUST_LOG=info
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/health || exit 1
ENTRYPOINT ["/usr/local/bin/nexussale-server"]
