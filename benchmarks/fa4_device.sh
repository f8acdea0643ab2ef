#!/usr/bin/env bash
# flash-attn-4 on the device machine (issue 29), carried in two parts because its libraries (73 MB compressed) are
# more than one call may carry. Prepare here with `bash benchmarks/fa4_device.sh prepare` (downloads the wheels for
# the device's Python 3.12, unpacks them into one tree, xz-compresses it, splits it into .dev/fa4/part-aa and
# part-ab, git-ignored), then on one warm device machine, call right after call:
#   call 1 (carry .dev/fa4/part-aa):                  bash benchmarks/fa4_device.sh stash
#   call 2 (carry .dev/fa4/part-ab and .dev/fa4/SHA256): bash benchmarks/fa4_device.sh install && . /tmp/fa4site/env.sh
# Unpacked wheels need by hand what pip's .pth would do: nvidia_cutlass_dsl/dsl_packages goes on PYTHONPATH.
set -euo pipefail
WHEELS="flash-attn-4==4.0.0b36 nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1
nvidia-cutlass-dsl-libs-core==4.8.1 nvidia-cutlass-dsl-libs-cu13==4.8.1 quack-kernels==0.6.5
apache-tvm-ffi==0.1.15.post2 torch-c-dlpack-ext==0.1.5 einops"
SITE=/tmp/fa4site
case "${1:-}" in
  prepare)
    work=$(mktemp -d)
    # shellcheck disable=SC2086
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$work/wheels" $WHEELS
    mkdir -p "$work/tree"
    for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/tree/"; done
    tar -C "$work/tree" -cf - . | xz -T2 -6 > "$work/fa4.tar.xz"
    mkdir -p .dev/fa4 && rm -f .dev/fa4/part-*
    (cd .dev/fa4 && split -b 37M "$work/fa4.tar.xz" part- && sha256sum < "$work/fa4.tar.xz" | cut -d' ' -f1 > SHA256)
    ls -la .dev/fa4; rm -rf "$work" ;;
  stash)
    mkdir -p /tmp/fa4-parts && cp .dev/fa4/part-aa /tmp/fa4-parts/ && ls -la /tmp/fa4-parts ;;
  install)
    cp .dev/fa4/part-ab /tmp/fa4-parts/
    got=$(cat /tmp/fa4-parts/part-aa /tmp/fa4-parts/part-ab | sha256sum | cut -d' ' -f1)
    [ "$got" = "$(cat .dev/fa4/SHA256)" ] || { echo "flash-attn-4 parts do not join: run stash first on this machine"; exit 2; }
    rm -rf "$SITE" && mkdir -p "$SITE"
    cat /tmp/fa4-parts/part-aa /tmp/fa4-parts/part-ab | xz -d | tar -x -C "$SITE"
    echo "export PYTHONPATH=$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages:\${PYTHONPATH:-}" > "$SITE/env.sh"
    # shellcheck disable=SC1091
    . "$SITE/env.sh"
    python3 - <<'PY'
import time, torch
from flash_attn.cute import flash_attn_func
q, k, v = (torch.randn(2, 2048, 16, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
t0 = time.perf_counter(); out = flash_attn_func(q, k, v, causal=True); out = out[0] if isinstance(out, tuple) else out
torch.cuda.synchronize(); first = time.perf_counter() - t0
ref = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                       is_causal=True).transpose(1, 2)
print(f"flash-attn-4 kernel: max |diff| vs SDPA {(out - ref).abs().max().item():.4f}, first call {first:.1f} s")
import transformers
from transformers.utils import is_flash_attn_4_available
print(f"transformers {transformers.__version__}: is_flash_attn_4_available() = {is_flash_attn_4_available()}")
PY
    ;;
  *) echo "usage: bash benchmarks/fa4_device.sh prepare|stash|install"; exit 2 ;;
esac
