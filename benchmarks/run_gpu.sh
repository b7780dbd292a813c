#!/usr/bin/env bash
# The GPU checks (issue 5) and the seed recipes on real CIFAR-10 photos (issue 10), in one go; paste the output into RESULTS.md with the
# date and the device.  From the repository root, with the project installed:
#   bash benchmarks/run_gpu.sh
set -euo pipefail
PY=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -m pytest -q tests/test_gpu.py tests/test_training.py
$PY benchmarks/throughput.py --model resnet18 --batch-size 512 --device cuda --amp --steps 90 --per-class 5000
$PY benchmarks/throughput.py --model resnet9 --batch-size 512 --device cuda --amp --steps 90 --per-class 5000
$PY benchmarks/augment_policies.py --device cuda
$PY benchmarks/seed_recipes.py --space cifar10 --device cuda --epochs 10
