# xngin API server. Migrations run first, then uvicorn. Settings come from XNGIN_* variables,
# a mounted xngin.settings.json (XNGIN_SETTINGS_FILE) and secrets in XNGIN_SECRETS_DIR.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN uv sync --no-dev
EXPOSE 8000
CMD ["sh", "-c", "uv run --no-sync xngin db upgrade && exec uv run --no-sync xngin serve --host 0.0.0.0 --port 8000 --workers ${XNGIN_WORKERS:-2}"]
