FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY stream_mlops ./stream_mlops
RUN pip install --no-cache-dir . && useradd --system mlops
USER mlops
ENTRYPOINT []
CMD ["stream-mlops", "run"]
