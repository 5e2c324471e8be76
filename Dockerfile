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
RUN useradd --create-home --uid 10001 seckill
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER seckill
WORKDIR /home/seckill
ENV SECKILL_ENV=production \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["seckill"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
