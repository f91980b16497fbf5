#!/usr/bin/env bash
# Every check that needs a GPU, in one run of a few minutes on one CUDA device:
#   bash benchmarks/gpu.sh            (after `make setup`; results also land in $OUT if set)
# Ordered by value, each step bounded by a timeout, so a short device lease still brings back the
# first ones:
# 1. the CUDA tests (layers, zoo, retrofit, AMP training, CUDA timing),
# 2. SE's wall-time overhead against its FLOPs overhead beside timm's, eager, inference and
#    training (bench_se_overhead.py),
# 3. a 1-process torchrun over NCCL with SyncBatchNorm (the DDP code path on CUDA),
# 4. the same overhead compiled, at batch 32,
# 5. the profiler's CUDA timing and the speed ratios against timm / torchvision on the GPU
#    (bf16, channels_last).
# Without senet's .venv (a bare GPU machine whose python3 has torch, timm, typer, rich), it runs
# the checkout in place with that python3.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/senet-gpu}
mkdir -p "$OUT"
status=0
# step SECONDS CMD...: run CMD with a time limit, log it, remember a failure
step() {
    local limit=$1; shift
    echo; echo "== $*" | tee -a "$OUT/gpu.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/gpu.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { status=1; echo "(step failed: exit $rc)" | tee -a "$OUT/gpu.log"; }
}

step 30 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step 30 "$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
step 240 "$PY" -m pytest -q -rs tests/test_cuda.py tests/test_profile.py -k "cuda"
step 240 "$PY" benchmarks/bench_se_overhead.py --device cuda --batch 1 8 32 --rounds 3 --train
step 120 "$PY" -m torch.distributed.run --nproc_per_node=1 -m senet train fashion_mnist_se_resnet20 \
    data.name=synthetic data.train_size=4096 data.val_size=512 data.image_size=28 \
    data.channels=1 data.num_classes=10 train.epochs=2 train.device=cuda train.amp=bf16 \
    train.sync_bn=true train.channels_last=true log.progress=plain "output_dir=/tmp/senet-gpu-ddp"
step 180 "$PY" benchmarks/bench_se_overhead.py --device cuda --batch 32 --modes fast --compile \
    --rounds 3 --train
step 60 "$PY" -m senet profile se_resnet50 --compare resnet50 --timing --device cuda \
    --batch-size 64 --channels-last
step 90 "$PY" benchmarks/bench_zoo.py --device cuda --batch 64 --channels-last
step 90 "$PY" benchmarks/bench_train.py --device cuda
echo; echo "gpu.sh: $([ $status -eq 0 ] && echo all passed || echo SOME STEPS FAILED); log in $OUT/gpu.log"
exit $status
