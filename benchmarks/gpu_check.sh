#!/usr/bin/env bash
# The CUDA checks in one go, for a session that is lent a GPU for a few minutes:
#
#   OUT=DIR PYTHON=python3 bash benchmarks/gpu_check.sh      # about 6-8 minutes on one H200
#   DRY_RUN=1 bash benchmarks/gpu_check.sh                    # the same plumbing on a CPU, tiny sizes
#
# Nothing to install where torch, torchvision, safetensors, jinja2, tqdm, matplotlib, onnx and
# onnxruntime already are: the package runs from src/. Writes 5 files under $OUT (default
# ./gpu_check): machine.txt, tests.txt, train_step.md, inference.md, cut_vs_cyclegan.md.
# Not covered: DDP over nccl needs two GPUs (NCCL refuses two ranks on one device).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_check}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

variants=("--precision bf16" "--precision bf16 --channels_last" "--precision bf16 --channels_last --compile")
if [ "${DRY_RUN:-0}" = 1 ]; then
    device=cpu; train=(--config cpu --quick --size 32 --ngf 4 --ndf 4); infer=(--quick --size 32 --ngf 4)
    cut=(--quick --size 32 --ngf 4 --ndf 4)
    # The CPU's own precision: bf16 where it is native, fp32 where it would be emulated (AVX2).
    variants=("${variants[@]//bf16/auto}")
    # The compiled step traced as on the GPU but without kernel generation: inductor's CPU code is
    # tested in tests/test_train.py, and here it would add minutes of C++ compilation.
    variants[2]+=" --compile_backend aot_eager"
else
    device=cuda; train=(--config paper --warmup 5 --iters 40 --rounds 4); infer=(--batch_size 16 --compile)
    cut=(--config paper --rounds 4 --iters 6)
    variants+=("--precision fp16 --channels_last")  # fp16 (GradScaler) is CUDA-only
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$out/machine.txt"

# 1. bf16 / fp16 / channels-last training with checkpoint and resume, compiled vs eager step,
#    translation (tests/test_cuda.py; every test skips where no GPU is visible).
"$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/tests.txt"

# 2. One training iteration (paper config: 256 px, resnet_9blocks, λ_identity 0.5): the
#    reference-style eager fp32 step against ours, one variant per run, each with its own baseline.
: > "$out/train_step.md"
for variant in "${variants[@]}"; do
    # shellcheck disable=SC2086  # the variant is a list of flags
    "$py" benchmarks/train_step.py --device "$device" "${train[@]}" $variant 2>&1 | tee -a "$out/train_step.md"
done

# 3. Generator inference: eager fp32, ours (bf16 + channels-last, + compile), onnxruntime.
"$py" benchmarks/inference.py --device "$device" "${infer[@]}" 2>&1 | tee "$out/inference.md"

# 4. CycleGAN vs CUT vs FastCUT iterations at 256 px (s/iter, peak memory), against the CUT paper's ratios.
"$py" benchmarks/cut_vs_cyclegan.py --device "$device" "${cut[@]}" 2>&1 | tee "$out/cut_vs_cyclegan.md"
