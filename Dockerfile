# The stripe-ledger service: applies migrations, then serves the webhook endpoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    LEDGER_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY webhooks ./webhooks
COPY projections ./projections
COPY replay ./replay
COPY cli ./cli
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app ledger \
    && mkdir -p /data && chown ledger /data

USER ledger
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["stripe-ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
