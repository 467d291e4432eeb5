# The kessai worker as an image, for deploy/compose.yaml (build context: the repository).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
RUN pip install --no-cache-dir . \
 && groupadd --system --gid 10001 kessai \
 && useradd --system --uid 10001 --gid kessai --home-dir /app --no-create-home kessai \
 && mkdir -p /app/.kessai && chown kessai:kessai /app/.kessai
# Not root: a worker needs no privilege (docs/security.md, L9).
USER kessai
ENV KESSAI_WEB_BIND=0.0.0.0 KESSAI_WEB_PORT=6066 KESSAI_STATE_DIR=/app/.kessai
EXPOSE 6066
CMD ["kessai", "worker"]
