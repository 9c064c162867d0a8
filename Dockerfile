# syntax=docker/dockerfile:1

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Generated *_pb2*.py files are committed (clients/python), so protoc is not needed here.
COPY pyproject.toml ./
COPY clients/python/ clients/python/
COPY server/ server/
COPY storage/ storage/
COPY ratelimit/ ratelimit/
COPY cache/ cache/
RUN pip install --upgrade pip && pip install ./clients/python .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SOCIALGRAPH_DATABASE_URL=sqlite:////data/socialgraph.db \
    SOCIALGRAPH_LISTEN=0.0.0.0:50051
COPY --from=builder /opt/venv /opt/venv
RUN groupadd --system --gid 10001 socialgraph \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin socialgraph \
    && mkdir -p /data \
    && chown socialgraph:socialgraph /data
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["socialgraph", "health"]
ENTRYPOINT ["socialgraph"]
# No flags here: flags beat SOCIALGRAPH_* variables, and the variables (the
# ENV above, or -e / compose) must decide, for the server and HEALTHCHECK alike.
CMD ["serve"]
