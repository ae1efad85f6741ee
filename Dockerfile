# Computer Use Backend: the API, MCP, VNC proxy and UI on one port, plus the per-session desktops
# (Xvfb, jwm, x11vnc, Firefox ESR) it starts. docs/DEPLOYMENT.md explains the run options; the
# short version:
#   docker build -t computer-use .
#   docker run --privileged --shm-size=1g -p 127.0.0.1:8000:8000 -v computer-use-data:/data \
#     -e ANTHROPIC_API_KEY -e API_TOKENS=$(openssl rand -hex 24) computer-use
# It listens on all of the container's interfaces, so it refuses to start without API_TOKENS
# (or ALLOW_UNAUTHENTICATED=true when an authenticating proxy is in front).
# Debian bookworm, like the machines `make run` targets: Debian's python3 (3.11) runs the service,
# so the system packages and the interpreter come from one place.
FROM debian:bookworm-slim

# System packages: the same idempotent script `make run` uses (runs as root here).
WORKDIR /app
COPY scripts/install-system-deps.sh scripts/install-system-deps.sh
RUN bash scripts/install-system-deps.sh \
    && rm -rf /var/lib/apt/lists/*

# The project, installed from pyproject.toml (pinned dependencies) into a virtualenv. Editable,
# as `make setup` does (the migrations ship inside the package either way).
COPY . .
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir -e .

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

# SQLite database, per-session home layers and screenshots live here.
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/v1/health' % os.environ.get('PORT', '8000'), timeout=4)"

# Runs as root on purpose: the service mounts overlays and creates one unprivileged user per
# session, and starts every session's programs as that user.
# tini as PID 1 reaps any orphan (e.g. a desktop program whose parent died), also where
# `--init` cannot be passed (Render). Render (and others) set PORT; start-up applies
# migrations (under a lock, so replicas may start together).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "exec computer-use serve --host 0.0.0.0 --port \"${PORT:-8000}\""]
