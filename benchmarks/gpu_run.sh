#!/usr/bin/env bash
# Every GPU check in one call of the device machine (see docs/engine.md, "The GPU check"):
#
#   here:   .tox/tests/bin/python benchmarks/gpu_bundle.py          # build/gpu-bundle/*.whl
#   here:   mkdir -p build/shared-models && cp -r ../shared/models/stories260K build/shared-models/
#   there:  bash benchmarks/gpu_run.sh                 # carry: build/gpu-bundle, build/shared-models
#
# 1. installs the bundle into /tmp/site (the image has torch and transformers; nothing can be fetched);
# 2. benchmarks/gpu_check.py: evalsuite's engine against lm-eval's hf model, shared-prefix scoring, the
#    out-of-memory back-off and MoE routing, bf16 on the GPU -> $OUT/gpu_check.json;
# 2b. benchmarks/gpu_generation.py: continuous batching against lm-eval's generate_until
#    -> $OUT/gpu_generation.json (SKIP_GPU_GENERATION=1 leaves it out);
# 3. the GPU-marked tests (pytest -m gpu): half precision, torchao int4/float8, MoE routing on CUDA
#    -> $OUT/pytest_gpu.txt and $OUT/junit_gpu.xml.
# GPU_CHECK_BUDGET (seconds, default 330) bounds step 2 so step 3 still runs inside one 10-minute call.
set -u -o pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site build/gpu-bundle/*.whl || exit 3
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' \
    | tee -a "$OUT/device.txt"

check=0
if [ -z "${SKIP_GPU_CHECK:-}" ]; then  # SKIP_GPU_CHECK=1: the tests alone, for a rerun
    python3 benchmarks/gpu_check.py --time-budget "${GPU_CHECK_BUDGET:-330}" --out "$OUT/gpu_check.json" \
        2>&1 | tee "$OUT/gpu_check.log"
    check=$?
fi

generation=0
if [ -z "${SKIP_GPU_GENERATION:-}" ]; then
    timeout 240 python3 benchmarks/gpu_generation.py --out "$OUT/gpu_generation.json" 2>&1 | tee "$OUT/gpu_generation.log"
    generation=$?
fi

# The tests import evalsuite from the checkout (like CI); the bundle supplies what the image lacks, and
# ../shared does not travel: the tiny models' tokenizer (stories260K) comes in build/shared-models.
EVALSUITE_SHARED_MODELS=$PWD/build/shared-models PYTHONPATH=/tmp/site:. timeout 180 python3 -m pytest -m gpu -p no:cacheprovider -q \
    --junitxml="$OUT/junit_gpu.xml" tests/models/test_hf.py tests/models/test_hf_gpu.py 2>&1 | tee "$OUT/pytest_gpu.txt"
tests=$?
echo "gpu_check exit $check, gpu_generation exit $generation, gpu tests exit $tests"
[ "$check" -eq 0 ] && [ "$generation" -eq 0 ] && [ "$tests" -eq 0 ]
