# The kessai worker as an image, for deploy/compose.yaml (build context: the repository).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
RUN pip install --no-cache-dir .
ENV KESSAI_WEB_BIND=0.0.0.0 KESSAI_WEB_PORT=6066 KESSAI_STATE_DIR=/app/.kessai
EXPOSE 6066
CMD ["kessai", "worker"]
