# One image for every Handoff service: `handoff run <service>` picks which.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HANDOFF_DATA_DIR=/var/lib/handoff
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY deploy ./deploy
COPY schemas ./schemas
COPY config ./config
# Editable install keeps schemas/ and config/ beside the code, where the services look for them.
RUN pip install --no-cache-dir -e '.[dev]' && useradd --system --home /var/lib/handoff handoff \
    && mkdir -p /var/lib/handoff && chown handoff /var/lib/handoff
USER handoff
ENTRYPOINT ["handoff"]
CMD ["--help"]
