# syntax=docker/dockerfile:1.7
# Skein's container image: the web app built, the release binary (no debug info) built with
# it embedded, and a small non-root runtime with CA certificates and the tools the services
# call (poppler-utils: pdfinfo, pdftoppm, pdftotext for PDF previews and knowledge extraction).
#
#   docker build -t skein .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/OWNER/skein:TAG --push .
#
# Multi-arch: the web stage runs once on the build machine (its output is the same for every
# architecture); the Rust stage runs on each target platform (natively on an arm64 runner, or
# under QEMU with buildx), so no cross linker is needed for jemalloc's C code.
ARG RUST_VERSION=1.95
ARG NODE_VERSION=20
ARG DEBIAN=bookworm

FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-${DEBIAN}-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# The commit goes into skein_build_info{revision} (pass --build-arg SKEIN_GIT_REVISION=$(git rev-parse --short HEAD)).
ARG SKEIN_GIT_REVISION=unknown
ENV SKEIN_GIT_REVISION=${SKEIN_GIT_REVISION}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p skein \
    && cp target/release/skein /usr/local/bin/skein

FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates poppler-utils \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin skein \
    && mkdir -p /data && chown skein:skein /data && chmod 0700 /data
COPY --from=build /usr/local/bin/skein /usr/local/bin/skein
USER 10001:10001
WORKDIR /data
ENV SKEIN_DATA_DIR=/data \
    SKEIN_LISTEN=0.0.0.0:3000 \
    SKEIN_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000 3001
# No curl in the image: bash's /dev/tcp speaks enough HTTP for a liveness check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SKEIN_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/skein"]
CMD ["serve"]
