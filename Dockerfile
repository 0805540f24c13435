# One image for gateway and worker; the command picks the role (see docker-compose.yml).
# BASE_IMAGE and npm_config_registry let scripts/compose.sh --local build it with no image
# registry: on a Node 20 image bootstrapped from Debian packages, against this machine's npm registry.
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
ARG npm_config_registry=https://registry.npmjs.org/
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfaiss-dev libopenblas0-pthread libjpeg62-turbo-dev liblcms2-dev libpng-dev g++ make python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
ENV ONNXRUNTIME_NODE_INSTALL=skip
# The project's own set-up: npm ci, the FAISS binding, the models checked by sha256, tsc -b.
RUN node scripts/setup.mjs
# The services run unprivileged; the data and key volumes start out owned by that user.
RUN groupadd --system --gid 10001 facegate \
 && useradd --system --uid 10001 --gid facegate --home-dir /app --no-create-home facegate \
 && mkdir -p /data /keys \
 && chown facegate:facegate /data /keys
USER facegate
ENV NODE_ENV=production DATA_DIR=/data HOST=0.0.0.0 ORT_DISABLE_TELEMETRY=1
VOLUME ["/data"]
EXPOSE 8080 9464
# Both roles serve /metrics: the gateway on PORT, a worker on METRICS_PORT.
HEALTHCHECK --interval=15s --timeout=30s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.METRICS_PORT || process.env.PORT || 8080}/metrics`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "apps/gateway/dist/main.js"]
