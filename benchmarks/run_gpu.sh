#!/usr/bin/env bash
# The GPU checks (issue 5) and the seed recipes on real CIFAR-10 photos (issue 10), in one go; paste the output into RESULTS.md with the
# date and the device.  From the repository root (it puts the checkout on PYTHONPATH: no install over that machine's torch):
#   bash benchmarks/run_gpu.sh            # the checks (about 5 minutes)
#   bash benchmarks/run_gpu.sh budget     # issue 10 on the GPU: a 3-minute budgeted search against the seed recipe
#                                         # alone for the same 3 minutes (about 8 minutes; one device call each)
# The lent machine has torch but not Ray or Optuna, and reaches no package index: `bash benchmarks/gpu_bundle.sh`
# here first, then the device tool's run(command="bash benchmarks/run_gpu.sh budget", carry=[".whl"]).
set -euo pipefail
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
what=${1:-checks}
if [[ $what != checks && $what != budget ]]; then
  echo "usage: bash benchmarks/run_gpu.sh [checks|budget]" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
case $what in
  checks)
    $PY -m pytest -q tests/test_gpu.py tests/test_training.py
    $PY benchmarks/throughput.py --model resnet18 --batch-size 512 --device cuda --amp --steps 90 --per-class 5000
    $PY benchmarks/throughput.py --model resnet9 --batch-size 512 --device cuda --amp --steps 90 --per-class 5000
    $PY benchmarks/augment_policies.py --device cuda
    $PY benchmarks/seed_recipes.py --space cifar10 --device cuda --epochs 10
    ;;
  budget)
    if ! $PY -c "import optuna, ray.tune" 2>/dev/null; then
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
      export PYTHONPATH=/tmp/site:$PYTHONPATH
    fi
    $PY benchmarks/budget.py --budget 3m --arms ab
    ;;
esac
