#!/usr/bin/env bash
# What a search needs on the lent GPU machine and that machine lacks, gathered here for the device tool (see
# ../.library/device/README.md), which sends the checkout and at most 64 MiB, and reaches no package index there:
#   .whl/    CPython 3.12 wheels of Ray, Optuna and what they need beyond that machine's image (which has torch,
#            timm, numpy, pandas, scikit-learn, safetensors, pyarrow, ...), the versions of this checkout's .venv.
#            Ray's wheel is 76 MiB; without what a Tune search on one machine never loads (the Java workers' jar,
#            31 MiB; RLlib, Serve and its LLM libraries; the dashboard's web client, which the search turns off)
#            and the runtime-env agent's own copy of aiohttp (that machine has aiohttp) it is 40, so that with
#            the photos it fits.  Checked here with CPython 3.12: a Ray Tune run and Optuna from these wheels alone.
#   shared/  the CIFAR-10 JPEGs from ../shared/data (16 MiB), which the benchmarks look for there too.
# Then, on the device:  run(command="bash benchmarks/run_gpu.sh budget", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir .whl
packages=(ray optuna sqlalchemy alembic mako colorlog jsonschema jsonschema-specifications referencing rpds-py
          pydantic pydantic-core annotated-types typing-inspection)
pins=()
for p in "${packages[@]}"; do
  pins+=("$p==$($PY -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$p")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${pins[@]}"
$PY - <<'EOF'
"""Ray's wheel without the parts a Tune search never loads (their RECORD lines too)."""
import pathlib
import zipfile

wheel = next(pathlib.Path(".whl").glob("ray-*.whl"))
slim = wheel.with_suffix(".slim")
unused = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/", "ray/dashboard/client/",
          "ray/_private/runtime_env/agent/thirdparty_files/")


def dropped(name: str) -> bool:
    return name.startswith(unused)


with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
    for item in src.infolist():
        if dropped(item.filename):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line for line in data.splitlines(keepends=True)
                            if not dropped(line.split(b",")[0].decode()))
        dst.writestr(item, data)
slim.replace(wheel)
EOF
mkdir -p shared/data
cp ../shared/data/cifar10-train-jpg.tar.gz ../shared/data/README.md shared/data/
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb | tail -1 | cut -f1)
total=$(( $(du -b -s .whl | cut -f1) + $(du -b -s shared | cut -f1) + tree ))
echo "the checkout, .whl and shared/: $(( total / 1048576 )) MiB of the device tool's 64 a call"
(( total < 64 * 1048576 )) || { echo "error: over the device tool's 64 MiB" >&2; exit 1; }
