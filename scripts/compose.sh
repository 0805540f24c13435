#!/usr/bin/env bash
# The docker-compose stack: the README's quick start and test/compose both run these commands.
#
#   scripts/compose.sh up [--local]      build the images, start the stack, wait until it is healthy
#   scripts/compose.sh down [--local]    stop the stack and delete its volumes
#   scripts/compose.sh images            build the --local images only
#
# --local builds every image here, from Debian packages (debootstrap) and the npm registry, and
# adds deploy/compose.local.yml: for machines that cannot pull from an image registry. Without it
# the stack uses the public images (node, redis, prom/prometheus, grafana/grafana).
#
# Environment: COMPOSE_PROJECT_NAME (facegate), FACEGATE_BIND (127.0.0.1), FACEGATE_HTTP_PORT
# (8080), FACEGATE_PROMETHEUS_PORT (9090), FACEGATE_GRAFANA_PORT (3000), FACEGATE_API_KEYS_FILE
# (deploy/api-keys.example.json: no keys), FACEGATE_WAIT_S (300: how long `up` waits).
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL_DEBIAN=facegate-local/debian:bookworm
LOCAL_NODE=facegate-local/node:20-bookworm
LOCAL_SERVICE=facegate-local/facegate:latest

say() { printf '[compose] %s\n' "$*" >&2; }

command_name=${1:-}
local_images=false
[ "${2:-}" = --local ] && local_images=true

if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-p "${COMPOSE_PROJECT_NAME:-facegate}" -f docker-compose.yml)
$local_images && compose+=(-f deploy/compose.local.yml)

# The first URI among this machine's apt sources that ends in $1 (/debian, /debian-security).
apt_mirror() {
  grep -hoE '(https?://[^ ]+)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -E "$1/?\$" | head -n1 || true
}

# A minimal Debian bookworm imported as an image. Its apt reaches Debian the way this machine's
# does: the same mirrors, the same Acquire settings (proxies, snapshot validity), the same extra
# certificate authorities.
build_debian_image() {
  if docker image inspect "$LOCAL_DEBIAN" >/dev/null 2>&1; then return; fi
  local mirror security rootfs
  mirror=$(apt_mirror /debian)
  security=$(apt_mirror /debian-security)
  rootfs=$(mktemp -d /var/tmp/facegate-rootfs.XXXXXX)
  say "debootstrap bookworm from ${mirror:=http://deb.debian.org/debian}"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  rm -f "$rootfs"/etc/apt/sources.list
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n'
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "${security:-http://deb.debian.org/debian-security}"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  } >"$rootfs"/etc/apt/sources.list.d/debian.sources
  for file in /etc/apt/apt.conf.d/*; do
    if grep -q '^Acquire::' "$file"; then cp "$file" "$rootfs"/etc/apt/apt.conf.d/; fi
  done
  mkdir -p "$rootfs"/usr/local/share/ca-certificates
  cp /usr/local/share/ca-certificates/*.crt "$rootfs"/usr/local/share/ca-certificates/ 2>/dev/null || true
  # As in Debian's own images: packages never try to start services during a build.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs"/usr/sbin/policy-rc.d
  chmod 755 "$rootfs"/usr/sbin/policy-rc.d
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  chmod 755 "$rootfs" # mktemp made it owner-only; it becomes the image's /
  tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$LOCAL_DEBIAN" >/dev/null
  rm -rf "$rootfs"
}

# This machine's npm registry, handed to the builds that fetch from it.
npm_registry() {
  local registry
  registry=$(npm config get registry 2>/dev/null || true)
  echo "${registry:-https://registry.npmjs.org/}"
}

build_local_images() {
  local registry
  registry=$(npm_registry)
  build_debian_image
  # Host networking for builds only: they reach Debian and the registry as this machine does.
  # The three images on the Debian base build side by side (mostly package downloads).
  say "building $LOCAL_NODE, facegate-local/redis:bookworm, facegate-local/prometheus:bookworm"
  local builds=()
  docker build -q --network host --build-arg DEBIAN_IMAGE="$LOCAL_DEBIAN" --build-arg NPM_REGISTRY="$registry" \
    -t "$LOCAL_NODE" -f deploy/images/node.Dockerfile deploy/images >/dev/null &
  builds+=($!)
  docker build -q --network host --build-arg DEBIAN_IMAGE="$LOCAL_DEBIAN" \
    -t facegate-local/redis:bookworm -f deploy/images/redis.Dockerfile deploy/images >/dev/null &
  builds+=($!)
  docker build -q --network host --build-arg DEBIAN_IMAGE="$LOCAL_DEBIAN" \
    -t facegate-local/prometheus:bookworm -f deploy/images/prometheus.Dockerfile deploy/images >/dev/null &
  builds+=($!)
  local build failed=0
  for build in "${builds[@]}"; do wait "$build" || failed=1; done
  if [ "$failed" -ne 0 ]; then
    say 'an image build failed'
    return 1
  fi
  say "building $LOCAL_SERVICE"
  service_context | docker build -q --network host --build-arg BASE_IMAGE="$LOCAL_NODE" \
    --build-arg npm_config_registry="$registry" -t "$LOCAL_SERVICE" - >/dev/null
}

# The checkout as git sees it (tracked and untracked files, nothing ignored), plus the npm
# dependencies (the root's and each workspace's own) and the FAISS binding it has installed when it has (same Debian release, same
# Node ABI): the image's set-up then finds them current and skips a second npm ci and native
# compile, but still fetches and verifies the models and compiles the TypeScript.
service_context() {
  local prepared=()
  if [ -f node_modules/.package-lock.json ]; then
    prepared+=(node_modules)
    # Workspaces keep their own copies where versions clash with the hoisted ones (ajv 8 beside 6).
    local nested
    for nested in packages/*/node_modules apps/*/node_modules; do
      if [ -d "$nested" ]; then prepared+=("$nested"); fi
    done
  fi
  if [ -d packages/faiss/build/Release ]; then prepared+=(packages/faiss/build/Release); fi
  {
    git ls-files -z --cached --others --exclude-standard
    if [ "${#prepared[@]}" -gt 0 ]; then find "${prepared[@]}" -print0; fi
  } | tar -c --null --no-recursion --ignore-failed-read -T -
}

# Waits until every container of the stack is healthy (or, without a health check, running; the
# one-shot key service: exited with 0).
wait_until_healthy() {
  local deadline=$((SECONDS + ${FACEGATE_WAIT_S:-300})) id state
  for id in $("${compose[@]}" ps -q); do
    while :; do
      state=$(docker inspect -f '{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
      case "$state" in
        *' running 0 healthy' | *' running 0 ' | *' exited 0 '*) break ;;
      esac
      if [[ "$state" == *' exited '* ]] || ((SECONDS >= deadline)); then
        say "not healthy: $state"
        "${compose[@]}" logs --tail 40 >&2 || true
        return 1
      fi
      sleep 2
    done
  done
}

case "$command_name" in
  images)
    build_local_images
    ;;
  up)
    if $local_images; then
      build_local_images
      "${compose[@]}" up -d
    else
      "${compose[@]}" up -d --build
    fi
    wait_until_healthy
    say "the API is on http://${FACEGATE_BIND:-127.0.0.1}:${FACEGATE_HTTP_PORT:-8080}, Prometheus on port ${FACEGATE_PROMETHEUS_PORT:-9090}"
    ;;
  down)
    "${compose[@]}" down --volumes --remove-orphans
    ;;
  *)
    echo 'usage: scripts/compose.sh up|down [--local] | images' >&2
    exit 2
    ;;
esac
