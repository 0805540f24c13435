# One image for gateway and worker; the command picks the role (see docker-compose.yml).
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libfaiss-dev g++ make python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN node scripts/setup.mjs
ENV NODE_ENV=production DATA_DIR=/data HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8080 9464
CMD ["node", "apps/gateway/dist/main.js"]
