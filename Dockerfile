# syntax=docker/dockerfile:1
#
# One image for every Herald role: `herald serve | api | router | workers |
# receipts | migrate`. Build from the repository root:
#
#   docker build -t herald:dev .
#
# The Kubernetes manifests in deploy/k8s/base run it with different args.

# ---- build -----------------------------------------------------------------
FROM rust:1-bookworm AS build

# rdkafka builds its bundled librdkafka from source: a C toolchain and make
# (build-essential; zlib and pkg-config already come with the rust image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# The cache mounts keep the registry and target dir between builds; the
# binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p herald \
    && install -D -m 0755 target/release/herald /out/herald

# ---- runtime ---------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /var/lib/herald \
        --shell /usr/sbin/nologin herald \
    && install -d -o herald -g herald -m 0750 /var/lib/herald

COPY --from=build /out/herald /app/herald
COPY templates /app/templates

# Production defaults; the deployment's environment overrides any of them.
# HERALD_LISTEN stays at its loopback default here: listening on 0.0.0.0
# needs HERALD_API_KEYS, which only the deployment can provide.
ENV HERALD_TEMPLATES_DIR=/app/templates \
    HERALD_DATA_DIR=/var/lib/herald \
    HERALD_LOG_FORMAT=json

WORKDIR /var/lib/herald
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/app/herald"]
CMD ["serve"]
