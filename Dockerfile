# sectorbot: paper trading on bundled history by default; mount /data for state.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 sectorbot \
    && mkdir -p /data && chown sectorbot:sectorbot /data
COPY --from=build /install /usr/local
COPY config /etc/sectorbot
USER sectorbot
WORKDIR /home/sectorbot
ENV SECTORBOT__STATE__PATH=/data/sectorbot.sqlite3 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
# Healthy while the state store answers and the last cycle is recent enough for the mode.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
    CMD ["sectorbot", "status"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["sectorbot"]
CMD ["run"]
