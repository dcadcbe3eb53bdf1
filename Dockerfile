# store-monitor in a container: built from this checkout, run as a user of its own.
#   docker build -t store-monitor .
#   docker run --rm store-monitor --help
# compose.yaml runs it with PostgreSQL, a migration step and a worker. Not built in CI on
# the development machines (they have no Docker daemon); tests/operations.rs checks this
# file's shape, and `docker compose config` where Compose is installed.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/store-monitor /usr/local/bin/store-monitor

FROM debian:bookworm-slim
# The binary needs no system library beyond libc: TLS is rustls with its roots built in.
RUN useradd --system --uid 10001 --home-dir /var/lib/store-monitor --shell /usr/sbin/nologin store-monitor \
 && mkdir -p /var/lib/store-monitor/reports /var/lib/store-monitor/data \
 && chown -R 10001:10001 /var/lib/store-monitor
COPY --from=build /usr/local/bin/store-monitor /usr/local/bin/store-monitor
# The bundled 2023 sample is for trying the image out, never its data: the data folder is
# empty until the operator mounts the real files there (or pushes polls to /polls). To
# try it: docker run -e STORE_MONITOR_DATA=/usr/share/store-monitor/sample …
COPY data /usr/share/store-monitor/sample
ENV STORE_MONITOR_BIND=0.0.0.0:8000 \
    STORE_MONITOR_DATA=/var/lib/store-monitor/data \
    STORE_MONITOR_REPORTS=/var/lib/store-monitor/reports \
    STORE_MONITOR_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/store-monitor
EXPOSE 8000 9464
# Asks this container's own /readyz (the bind's port, on loopback): no curl in the image.
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
  CMD ["store-monitor", "healthcheck", "--timeout", "5"]
ENTRYPOINT ["store-monitor"]
CMD ["serve"]
