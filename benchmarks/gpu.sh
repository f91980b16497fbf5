#!/usr/bin/env bash
# Every check that needs a GPU, in one run of about 5 minutes on one CUDA device:
#   bash benchmarks/gpu.sh            (after `make setup`; results also land in $OUT if set)
# 1. the CUDA tests (layers, zoo, retrofit, AMP training, CUDA timing),
# 2. a 1-process torchrun over NCCL with SyncBatchNorm (the DDP code path on CUDA),
# 3. the speed ratios against timm / torchvision on the GPU (bf16, channels_last),
# 4. SE's wall-time overhead against its FLOPs overhead (bench_se_overhead.py).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-/tmp/senet-gpu}
mkdir -p "$OUT"
status=0
step() { echo; echo "== $*"; "$@" 2>&1 | tee -a "$OUT/gpu.log"; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1; }

step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step "$PY" -m pytest -q -rs tests/test_cuda.py tests/test_profile.py -k "cuda"
step .venv/bin/torchrun --nproc_per_node=1 -m senet train fashion_mnist_se_resnet20 \
    data.name=synthetic data.train_size=4096 data.val_size=512 data.image_size=28 \
    data.channels=1 data.num_classes=10 train.epochs=2 train.device=cuda train.amp=bf16 \
    train.sync_bn=true train.channels_last=true log.progress=plain "output_dir=$OUT/ddp"
step "$PY" -m senet profile se_resnet50 --compare resnet50 --timing --device cuda \
    --batch-size 64 --channels-last
step "$PY" benchmarks/bench_zoo.py --device cuda --batch 64 --channels-last
step "$PY" benchmarks/bench_train.py --device cuda
# 4. SE's latency overhead on CUDA beside timm's, inference and training, eager and compiled
step "$PY" benchmarks/bench_se_overhead.py --device cuda --batch 1 32 --rounds 3 --train --compile
echo; echo "gpu.sh: $([ $status -eq 0 ] && echo all passed || echo SOME STEPS FAILED); log in $OUT/gpu.log"
exit $status
