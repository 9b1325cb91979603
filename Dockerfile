# The stripe-ledger service: applies migrations, then serves the webhook endpoint.
# The build stage turns the whole build context (filtered by .dockerignore) into a wheel,
# so the image holds exactly what pyproject.toml's package list declares: no list of
# folders here to fall out of step with it (tests/test_packaging.py builds it this way).
FROM python:3.11-slim AS build

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    LEDGER_DATA_DIR=/data

WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /app ledger \
    && mkdir -p /data && chown ledger /data

USER ledger
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["stripe-ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
