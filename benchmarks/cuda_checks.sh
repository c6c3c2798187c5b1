#!/usr/bin/env bash
# The CUDA checks in one run, for a machine with a GPU and perhaps no package registry: install
# seqkit without dependencies (small ones from .device/wheels when there), run the tests that
# have CUDA cases, then the GPU benchmark. Everything it prints also lands in $OUT.
#
# Prepare on a machine with the registry and the shared corpora (.device/ is git-ignored):
#   pip download --no-deps -d .device/wheels threadpoolctl tomli-w
#   mkdir -p .device/corpora && cp ../shared/corpora/timemachine.txt .device/corpora/
# Then, on the GPU machine (the device tool: carry [".device"]):
#   bash benchmarks/cuda_checks.sh
# Budget: about a minute to install and test, a few minutes of benchmark.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.device/out}"
mkdir -p "$out"
py="${PYTHON:-python}"
export SEQKIT_DATA="${SEQKIT_DATA:-$PWD/.device/corpora}"

if [ -d .device/wheels ]; then
  "$py" -m pip install -q --no-deps --no-index --find-links .device/wheels threadpoolctl tomli-w 2>&1 | tail -2
fi
"$py" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2 || exit 1
{ nvidia-smi -L; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"; } 2>&1 | tee "$out/machine.txt"

status=0
timeout "${TEST_TIMEOUT_S:-240}" "$py" -m pytest -q -p no:randomly -rs tests/test_torch_graphs.py \
  tests/test_running_sums.py tests/test_torch_backend.py tests/test_equivalence.py 2>&1 \
  | tail -40 | tee "$out/cuda_tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout "${BENCH_TIMEOUT_S:-300}" "$py" benchmarks/bench.py --device cuda --batch-sizes "${BATCH_SIZES:-32,256,1024}" \
  --repeats "${REPEATS:-5}" --no-mxnet --json "$out/bench_cuda.json" 2>&1 | tee "$out/bench_cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit "$status"
