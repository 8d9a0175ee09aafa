#!/usr/bin/env bash
# Install the pinned CUDA 13.0 compiler toolchain (nvcc, ptxas, cicc/nvvm,
# headers) from PyPI wheels into a python venv, so that kernels can be compiled
# to PTX on a machine with no CUDA toolkit and no GPU (DESIGN.md, "Building
# without a GPU").
#
# Usage: scripts/install-cuda-toolchain.sh [DIR]
#   DIR defaults to $SHOESTRING_CUDA_TOOLCHAIN, else <repo>/.cuda-toolchain.
#
# Prints exactly one line on stdout, `NVCC=<absolute path to nvcc>`, so that
#   eval "$(scripts/install-cuda-toolchain.sh)"; export NVCC
# works; everything else goes to stderr. Idempotent: when the stamp matches the
# pins and nvcc runs, a second run returns at once.
#
# The printed nvcc is the wheel's own binary, not a wrapper or symlink: it finds
# cicc, ptxas, libdevice and the headers through bin/nvcc.profile relative to
# the path it was invoked by (a symlink to it does NOT work), and needs no
# environment variables. It does need a host compiler (`gcc`) on PATH, even for
# -ptx. `$(dirname "$NVCC")/..` is a CUDA_HOME-like tree (bin/ include/ lib/
# nvvm/); its lib/ holds libnvrtc.so.13 and libcudart.so.13 (add it to
# LD_LIBRARY_PATH to load them).
set -euo pipefail

# The wheels are installed together, in ONE pip command: a newer nvidia-nvvm
# than the one matching nvcc breaks ptxas. nvidia-cuda-nvrtc is not needed by
# nvcc; it provides libnvrtc.so.13 (in $(dirname "$NVCC")/../lib) for the
# NVRTC tests, which need no GPU.
PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-nvvm==13.0.88
  nvidia-cuda-nvrtc==13.0.88
)

log() { printf 'install-cuda-toolchain: %s\n' "$*" >&2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${SHOESTRING_CUDA_TOOLCHAIN:-$repo_root/.cuda-toolchain}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

venv="$dir/venv"
stamp="$dir/.stamp"
nvcc_file="$dir/nvcc-path"
want_stamp="$(printf '%s\n' "${PINS[@]}")"

# Fast path: same pins, recorded nvcc still runs.
if [[ -f "$stamp" && -f "$nvcc_file" ]] && [[ "$(cat "$stamp")" == "$want_stamp" ]]; then
  nvcc="$(cat "$nvcc_file")"
  if [[ -x "$nvcc" ]] && "$nvcc" --version >/dev/null 2>&1; then
    log "up to date in $dir"
    printf 'NVCC=%s\n' "$nvcc"
    exit 0
  fi
fi

start=$SECONDS
log "installing ${PINS[*]} into $dir"
rm -f "$stamp" "$nvcc_file"
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
fi
# All five in one command so that pip resolves them together (see above).
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q \
  --only-binary=:all: "${PINS[@]}" >&2

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
nvcc="$site/nvidia/cu13/bin/nvcc"
if [[ ! -x "$nvcc" ]]; then
  log "error: nvcc not found at $nvcc"
  exit 1
fi
if ! command -v gcc >/dev/null; then
  log "warning: no gcc on PATH; nvcc needs a host compiler even for -ptx"
fi

# Verify: PTX for compute_80 (what build.rs emits) and a cubin through ptxas.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/k.cu" <<'CU'
#include <cuda_runtime.h>
#include <cuda_bf16.h>
extern "C" __global__ void axpy(float a, const __nv_bfloat16 *x, float *y, int n) {
  __shared__ float s[128];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  s[threadIdx.x] = i < n ? __bfloat162float(x[i]) : 0.0f;
  __syncthreads();
  if (i < n) y[i] = a * s[threadIdx.x] + y[i];
}
CU
"$nvcc" -ptx -arch=compute_80 -o "$tmp/k.ptx" "$tmp/k.cu" >&2
grep -q '\.entry axpy' "$tmp/k.ptx" || { log "error: PTX has no axpy entry"; exit 1; }
"$nvcc" -cubin -arch=sm_90 -Xptxas -v -o "$tmp/k.cubin" "$tmp/k.cu" >&2
[[ -s "$tmp/k.cubin" ]] || { log "error: ptxas produced no cubin"; exit 1; }
[[ -e "$(dirname "$nvcc")/../lib/libnvrtc.so.13" ]] || { log "error: libnvrtc.so.13 missing"; exit 1; }

printf '%s\n' "$nvcc" >"$nvcc_file"
printf '%s\n' "$want_stamp" >"$stamp"
log "installed in $((SECONDS - start))s: $("$nvcc" --version | grep -m1 release)"
printf 'NVCC=%s\n' "$nvcc"
