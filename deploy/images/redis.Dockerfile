# Redis from Debian bookworm's redis-server, in place of redis:7 where no image registry can be
# reached (scripts/compose.sh --local). Like the official image it listens on every interface
# without protected mode (only the compose network reaches it) and keeps its files in /data.
ARG DEBIAN_IMAGE=facegate-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data \
 && printf 'bind * -::*\nprotected-mode no\ndir /data\n' > /etc/redis/container.conf \
 && printf '#!/bin/sh\nexec /usr/bin/redis-server /etc/redis/container.conf "$@"\n' > /usr/local/bin/redis-server \
 && chmod 755 /usr/local/bin/redis-server
USER redis
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD ["redis-cli", "ping"]
CMD ["redis-server"]
