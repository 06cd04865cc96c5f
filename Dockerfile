# syntax=docker/dockerfile:1.7
# Images of the dynamic pricing services, one build target each:
#   docker build --target engine    -t dynpricing-engine .     # decides and learns (embedded)
#   docker build --target decider   -t dynpricing-decider .    # decides (split, many replicas)
#   docker build --target learner   -t dynpricing-learner .    # learns (split, one replica)
#   docker build --target producer  -t dynpricing-producer .
#   docker build --target simulator -t dynpricing-simulator .
# Every target is the same virtualenv and `dynpricing` command; a target adds only
# its command, port, health check and (engine, learner) state volume, a few
# metadata layers over the shared runtime stage.
# Dependencies are installed with the exact versions of constraints.txt (all of
# them ship wheels, so no stage needs a compiler).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: the project and its pinned dependencies in a virtualenv ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The dependencies first, in a layer of their own: it is rebuilt only when
# pyproject.toml or constraints.txt change, not with every change of the code.
# --only-binary: a dependency without a wheel fails the build instead of
# pulling in a compiler.
COPY constraints.txt pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install --no-cache-dir --only-binary=:all: --constraint constraints.txt --requirement requirements.txt \
    && python -m compileall -q /opt/venv
COPY README.md ./
COPY services ./services
RUN pip install --no-cache-dir --only-binary=:all: --no-deps --constraint constraints.txt . \
    && python -m compileall -q /opt/venv/lib/python3*/site-packages/dynpricing

# --- runtime: slim base, the virtualenv, an unprivileged user ---------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dynpricing" \
      org.opencontainers.image.description="Real-time dynamic pricing over Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 dynpricing \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/dynpricing --shell /usr/sbin/nologin dynpricing \
    && mkdir -p /var/lib/dynpricing \
    && chown 10001:10001 /var/lib/dynpricing
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/dynpricing
USER 10001:10001
ENTRYPOINT ["dynpricing"]

# --- engine: decides prices, keeps its learning state in /var/lib/dynpricing
FROM runtime AS engine
ENV DYNPRICING_ENGINE_HTTP_PORT=8000 \
    DYNPRICING_ENGINE_STATE_PATH=/var/lib/dynpricing/bandit_stats.json
EXPOSE 8000
VOLUME ["/var/lib/dynpricing"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DYNPRICING_ENGINE_HTTP_PORT'] + '/healthz', timeout=3)"]
CMD ["engine"]

# --- decider: prices demand from its read-only copy of the model (stateless)
FROM runtime AS decider
ENV DYNPRICING_DECIDER_HTTP_PORT=8003
EXPOSE 8003
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DYNPRICING_DECIDER_HTTP_PORT'] + '/healthz', timeout=3)"]
CMD ["decider"]

# --- learner: learns the posterior, publishes the model, state in /var/lib/dynpricing
FROM runtime AS learner
ENV DYNPRICING_LEARNER_HTTP_PORT=8004 \
    DYNPRICING_LEARNER_STATE_PATH=/var/lib/dynpricing/bandit_stats.json
EXPOSE 8004
VOLUME ["/var/lib/dynpricing"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DYNPRICING_LEARNER_HTTP_PORT'] + '/healthz', timeout=3)"]
CMD ["learner"]

# --- producer: publishes synthetic demand events ----------------------------
FROM runtime AS producer
ENV DYNPRICING_PRODUCER_HTTP_PORT=8001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DYNPRICING_PRODUCER_HTTP_PORT'] + '/healthz', timeout=3)"]
CMD ["producer"]

# --- simulator: answers decisions with outcomes from a market model ---------
FROM runtime AS simulator
ENV DYNPRICING_SIMULATOR_HTTP_PORT=8002
EXPOSE 8002
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['DYNPRICING_SIMULATOR_HTTP_PORT'] + '/healthz', timeout=3)"]
CMD ["simulator"]
