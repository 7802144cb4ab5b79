# One image for every Handoff service: `handoff run <service>` picks which.
# Stages: the locked run-time dependencies first (cached until requirements/runtime.lock changes),
# then the source; `devtools` adds the dev dependencies for the local stand-ins (compose's inbox).
FROM python:3.11-slim AS deps
RUN python -m venv /opt/venv
COPY requirements/runtime.lock /tmp/runtime.lock
RUN /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/runtime.lock

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH PYTHONPATH=/app \
    HANDOFF_DATA_DIR=/var/lib/handoff
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The services find config/ beside services/ (services/kernel/settings.py REPO_ROOT); the Avro schemas
# are generated from the event models, and the templates sit in their packages.
COPY services ./services
COPY config ./config
RUN printf '#!/bin/sh\nexec python -m services.cli "$@"\n' > /usr/local/bin/handoff && chmod 755 /usr/local/bin/handoff \
    && useradd --system --home /var/lib/handoff handoff && mkdir -p /var/lib/handoff/keys \
    && chown -R handoff /var/lib/handoff && chmod 700 /var/lib/handoff/keys
USER handoff
# Healthy: a worker has written its ready file, or the API answers /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD python -c "import glob, os, sys, urllib.request; \
d = os.environ['HANDOFF_DATA_DIR']; port = os.environ.get('HANDOFF_HTTP_PORT', '8080'); \
sys.exit(0 if glob.glob(d + '/run/*.ready') else \
         0 if urllib.request.urlopen('http://127.0.0.1:' + port + '/healthz', timeout=3).status == 200 else 1)"
ENTRYPOINT ["handoff"]
CMD ["--help"]

FROM runtime AS devtools
USER root
COPY requirements/dev.lock /tmp/dev.lock
RUN pip install --no-cache-dir -r /tmp/dev.lock
COPY deploy ./deploy
USER handoff
