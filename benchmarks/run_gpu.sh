#!/usr/bin/env bash
# Everything issue 5 asks of a lent GPU, in one go; paste the output into RESULTS.md with the
# date and the device.  From the repository root, with the project installed:
#   bash benchmarks/run_gpu.sh
set -euo pipefail
PY=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
$PY -m pytest -q tests/test_gpu.py tests/test_training.py
$PY benchmarks/throughput.py --model resnet18 --batch-size 512 --device cuda --amp --steps 100
$PY benchmarks/throughput.py --model resnet9 --batch-size 512 --device cuda --amp --steps 100
$PY benchmarks/augment_policies.py --device cuda
