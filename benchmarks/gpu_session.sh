#!/usr/bin/env bash
# Everything archspec wants from a lent GPU machine, as one call of the device tool's `run` (at most
# 8.5 minutes; each part has its own timeout so one hang cannot eat the rest). Logs go to $OUT.
#
#   1. the CUDA tests: bf16 training step, CPU/GPU agreement, inductor, bench smoke, the AOTI CUDA package,
#      `archspec train --device cuda --precision bf16 --channels-last`
#   2. issue 6's loop overhead on the GPU: benchmarks/train_vs_loop.py for resnet50, vit_b_16 and
#      efficientnet_b0 (bf16, channels_last, batch 128; the H100 anchors are torchvision's
#      3,725 / 1,992 / 2,908 img/s)
#   3. benchmarks/gpu_table.py: ours vs torchvision/timm, eager, inference and training
#
# `bash benchmarks/gpu_session.sh tensorrt` is a call of its own (about 3 minutes at most): the tensorrt plugin
# against the real torch-tensorrt 2.14 (tests/test_tensorrt_plugin.py -k real_torch_tensorrt: the installed
# functions have the signatures the tests' stand-in uses; seed_cnn_bn built fp32 with its .engine and fp16, each
# .trt.ep loaded and run at batches 1, 5 and 100, not the profile's opt 32, against the torch backend). It needs
# torch-tensorrt and TensorRT (tensorrt-cu13, over a GiB: too large to carry) in the device image; where they
# are not, the tests skip and tensorrt.log says so.
#
# The device image has torch, torchvision, timm, scikit-learn, safetensors, jinja2, networkx and PyYAML,
# but not pydantic. Before the call, here (see the device tool's README for the platform flags):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
# then: run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=560)
set -uo pipefail
OUT=${OUT:-/tmp/archspec-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
# archspec itself, installed: its built-in ops and backends register through entry points, which a bare
# PYTHONPATH does not provide. No build isolation: the image's setuptools and wheel build it, nothing is fetched.
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$OUT/gpu.txt"

if [ "${1:-}" = tensorrt ]; then
    python3 -c "import torch_tensorrt; print('torch_tensorrt', torch_tensorrt.__version__)" 2>&1 | tail -1 | tee -a "$OUT/gpu.txt"
    timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/test_tensorrt_plugin.py -k real_torch_tensorrt \
        2>&1 | tee "$OUT/tensorrt.log"
    exit 0
fi

timeout 150 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_accelerated.py \
    "tests/test_bench.py::test_cuda_bf16_channels_last_smoke" \
    "tests/test_aoti_backend.py::test_cuda_package_loads_without_archspec_and_matches" \
    "tests/test_train_loop.py::test_cuda_bf16_training_learns" 2>&1 | tee "$OUT/tests.log"

for spec in resnet50 vit_b_16 efficientnet_b0; do
    timeout 60 python3 benchmarks/train_vs_loop.py --spec "$spec" --device cuda --precision bf16 --channels-last \
        --batch 128 --rounds 3 2>&1 | tee -a "$OUT/train_vs_loop.log"
done

# eager columns only: the compiled ones need a call of their own (python3 benchmarks/gpu_table.py)
timeout 180 python3 benchmarks/gpu_table.py --models resnet50 vit_b_16 efficientnet_b0 --no-compile --deadline-s 150 \
    > "$OUT/gpu_table.md" 2> "$OUT/gpu_table.log"
cat "$OUT/gpu_table.md"
