# One image for every process (web, workers, beat); the command picks the role.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 1000 app \
    && apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=app:app . .
RUN mkdir -p /app/var/media /app/var/staticfiles && chown -R app:app /app/var
USER app
EXPOSE 8000
# Reached only through the proxy (docs/security.md, "Behind nginx"). No
# --proxy-headers: the client address comes from TRUSTED_PROXY_HOPS.
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "companionhub.asgi:application"]
