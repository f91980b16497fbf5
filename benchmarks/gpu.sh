#!/usr/bin/env bash
# Every check that needs a GPU, in one run of under 8 minutes on one CUDA device:
#   bash benchmarks/gpu.sh            (after `make setup`; results also land in $OUT if set)
#   EXTRA=1 bash benchmarks/gpu.sh    (then the older SE-overhead benchmarks, ~8 minutes more)
# Ordered by value, each step bounded by a timeout (the bounds sum to 480 s), so a short device
# lease still brings back the first ones:
# 1. the CUDA tests: layers, zoo, retrofit, AMP training against its CPU fp32 reference,
#    `auto` timing the GPU's candidates in a real run, optimize_for_inference's dtype race with
#    CUDA graphs, CUDA timing (tests/test_cuda.py, the profiler's CUDA test),
# 2. a 1-process torchrun over NCCL with SyncBatchNorm, amp/channels_last/compile left auto
#    (the DDP code path, rank 0 timing for all ranks),
# 3. what `auto` picks against every eager candidate (fp32, channels_last, bf16, fp16) for
#    SE-ResNet-20/56/110 and their twins, SE's step overhead in the settled mode, and
#    optimize_for_inference (CUDA graphs) on se_resnet50 at batch 1/8/32 (bench_auto.py),
# 4. the compiled candidates (whole model, per residual stage) at depth 20.
# Without senet's .venv (a bare GPU machine whose python3 has torch, timm, typer, rich), it runs
# the checkout in place with that python3.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/senet-gpu}
mkdir -p "$OUT"
# auto's timings go to a cache of this run's own (so it measures now) that comes back in $OUT.
export SENET_CACHE_DIR="$OUT/senet-cache"
status=0
# step SECONDS CMD...: run CMD with a time limit, log it, remember a failure
step() {
    local limit=$1; shift
    echo; echo "== $*" | tee -a "$OUT/gpu.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/gpu.log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { status=1; echo "(step failed: exit $rc)" | tee -a "$OUT/gpu.log"; }
}

step 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step 20 "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
step 110 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_profile.py -k "cuda"
step 80 "$PY" -m torch.distributed.run --nproc_per_node=1 -m senet train fashion_mnist_se_resnet20 \
    data.name=synthetic data.synthetic_train=60000 data.train_size=60000 data.val_size=512 \
    data.image_size=28 data.channels=1 data.num_classes=10 train.epochs=2 train.device=cuda \
    train.amp=auto train.channels_last=auto train.compile=auto train.sync_bn=true \
    log.progress=plain "output_dir=$OUT/ddp-auto"
step 100 "$PY" benchmarks/bench_auto.py --device cuda --no-compile --depths 20 56 110 \
    --inference-batches 1 8 32 --rounds 5 --json "$OUT/bench_auto_eager.json"
step 150 "$PY" benchmarks/bench_auto.py --device cuda --depths 20 --inference-batches \
    --rounds 5 --json "$OUT/bench_auto_compiled.json"
if [ "${EXTRA:-0}" = 1 ]; then
    step 240 "$PY" benchmarks/bench_se_overhead.py --device cuda --batch 1 8 32 --rounds 3 --train
    step 180 "$PY" benchmarks/bench_se_overhead.py --device cuda --batch 32 --modes fast \
        --compile --rounds 3 --train
    step 60 "$PY" -m senet profile se_resnet50 --compare resnet50 --timing --device cuda \
        --batch-size 64 --channels-last
    step 90 "$PY" benchmarks/bench_zoo.py --device cuda --batch 64 --channels-last
    step 90 "$PY" benchmarks/bench_train.py --device cuda
fi
echo; echo "gpu.sh: $([ $status -eq 0 ] && echo all passed || echo SOME STEPS FAILED); log in $OUT/gpu.log"
exit $status
