# sectorbot: paper trading on bundled history by default; mount /data for state.
# One base for both stages, pinned to an exact Python patch release and Debian release (a
# moving tag like python:3.11-slim changes under a rebuild). Where a registry is reachable,
# pin its digest as well for byte-for-byte rebuilds:
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm   (reads the digest)
#   docker build --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md LICENSE ./
RUN mkdir bot && touch bot/__init__.py \
    && pip install --no-cache-dir --prefix=/install .
# The package itself, over the empty stand-in.
COPY bot ./bot
RUN pip install --no-cache-dir --no-deps --prefix=/install .

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 sectorbot \
    && useradd --create-home --uid 10001 --gid 10001 sectorbot \
    && mkdir -p /data && chown sectorbot:sectorbot /data
COPY --from=build /install /usr/local
# .dockerignore keeps config/secrets*.toml out of the build context, so out of the image.
COPY config /etc/sectorbot
# Numeric, so a host or an orchestrator (runAsUser) resolves it without /etc/passwd.
USER 10001:10001
WORKDIR /home/sectorbot
# The monitoring endpoint (/healthz, /metrics, the dashboard: docs/operations.md) listens on
# every interface of the container, so a published port or a Prometheus on the same network
# reaches it; deploy/docker-compose.yml publishes it on the host's loopback only.
ENV SECTORBOT__STATE__PATH=/data/sectorbot.sqlite3 \
    SECTORBOT__HTTP__ENABLED=true \
    SECTORBOT__HTTP__HOST=0.0.0.0 \
    SECTORBOT__HTTP__PORT=9310 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 9310
# Healthy while /healthz says so: the scheduler runs, the last cycle is recent, the venue
# answers and the kill switch is armed (`sectorbot healthcheck` asks it on loopback; no curl
# in a slim image).
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
    CMD ["sectorbot", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["sectorbot"]
CMD ["run"]
