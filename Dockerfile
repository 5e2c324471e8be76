# syntax=docker/dockerfile:1
# The production image: API (`seckill serve`) or order writer (`seckill worker`), chosen
# by the command. Embedded servers are not included: production names real ones.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY lua ./lua
COPY migrations ./migrations
# Wheels for the project and every dependency; the lua/ and migrations/ folders travel
# inside the seckill wheel (hatch force-include).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# Numeric USER below: Kubernetes can then check runAsNonRoot without reading /etc/passwd.
RUN useradd --create-home --uid 10001 seckill
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY deploy/docker/healthcheck.sh /usr/local/bin/seckill-healthcheck
USER 10001
WORKDIR /home/seckill
# The heartbeat file lets a plain `docker run IMAGE worker` be checked (the API ignores it).
ENV SECKILL_ENV=production \
    SECKILL_WORKER_HEARTBEAT_FILE=/tmp/seckill-worker.alive \
    PYTHONUNBUFFERED=1
# 8000: the API; 9101: a worker's /metrics and /healthz with `--metrics-port 9101`.
EXPOSE 8000 9101
# One check for both roles (the script is executable in git; COPY keeps its mode): it
# reads the container's command (serve: GET /healthz on its --port; worker: the heartbeat
# is fresh). A worker waits for its servers before its first pass: hence the start period.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["seckill-healthcheck"]
ENTRYPOINT ["seckill"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
