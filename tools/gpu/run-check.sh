#!/bin/sh
# Reassembles the pack of tools/gpu/pack.mjs on a bare GPU host (an NVIDIA driver, the CUDA 13
# and cuDNN 9 libraries, no Node, no npm, no network) and runs tools/gpu/check.mjs there.
#
#   sh tools/gpu/run-check.sh PARTS_DIR [WORK_DIR]
#
# PARTS_DIR holds the *.part-NN files and SHA256SUMS; WORK_DIR (default /tmp/facegate-gpu-run)
# receives the project. WORKER_DEVICE (default cuda:0), CHECK_SECONDS, CONCURRENCY pass through.
# CUDA_LIBRARY_PATH names the folders of the CUDA/cuDNN libraries; unset, they are looked for
# under /usr, /opt, /root and /home (CUDA toolkits, Debian packages, pip's nvidia-* wheels).
set -eu
parts=$(cd "${1:?usage: run-check.sh PARTS_DIR [WORK_DIR]}" && pwd)
work=${2:-/tmp/facegate-gpu-run}

(cd "$parts" && sha256sum --quiet -c SHA256SUMS)
rm -rf "$work" && mkdir -p "$work"
cat "$parts"/bundle.tar.gz.part-* | tar -xzf - -C "$work"
ort="$work/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
cat "$parts"/provider.tar.gz.part-* | tar -xzf - -C "$ort"

if [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
  CUDA_LIBRARY_PATH=$(find /usr /opt /root /home -xdev \( -name 'libcudart.so.13' -o -name 'libcublas.so.13' \
    -o -name 'libcublasLt.so.13' -o -name 'libcurand.so.10' -o -name 'libcudnn.so.9' \) 2>/dev/null |
    xargs -r -n1 dirname | sort -u | paste -sd: -)
fi
export CUDA_LIBRARY_PATH
# Set before Node starts: the loader reads LD_LIBRARY_PATH once (the FAISS binding's BLAS is in lib/).
export LD_LIBRARY_PATH="$work/lib${CUDA_LIBRARY_PATH:+:$CUDA_LIBRARY_PATH}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$work/bin:$PATH"
echo "[gpu-check] node $(node --version), CUDA_LIBRARY_PATH=${CUDA_LIBRARY_PATH:-none}" >&2
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader >&2 2>/dev/null || true
# CHECK_SCRIPT: another script of tools/gpu/ to run instead (e.g. diagnose.mjs), taken from the
# current folder when the pack predates it.
script=${CHECK_SCRIPT:-check.mjs}
[ -f "tools/gpu/$script" ] && cp "tools/gpu/$script" "$work/tools/gpu/$script"
cd "$work"
exec node "tools/gpu/$script"
