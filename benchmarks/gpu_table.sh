#!/usr/bin/env bash
# The methods table (benchmarks/protocol.yaml) on one CUDA GPU, inside one call of a lent device machine.
#
# The device image has PyTorch + CUDA but not every dependency of this project, and no network. So:
#   here   : make gpu-wheels          # the missing wheels (cp312, manylinux) into .whl/ (ignored by git)
#   device : bash benchmarks/gpu_table.sh      from the repository root, .whl carried, timeout_s 600
# It renders the world, trains the protocol's teacher, then the table's rows SEED BY SEED, and writes the table
# (methods.{json,md} + forest plot + grid) after every finished seed: a call that runs out of time still returns
# the seeds it finished. Runs resume only on the same machine (a device machine starts bare), so the deadline
# stops the script cleanly before the call's limit rather than losing the last table.
#
# Environment (all optional):
#   DEVICE      torch device of training and evaluation (default cuda)
#   JOBS        runs trained at once, each its own process sharing the GPU (default 4)
#   DEADLINE_S  wall seconds after which no further seed is started and the running one is stopped (default 540)
#   RESULTS     where the tables go (default $OUT when set — the device tool's return folder — else
#               docs/results/gpu)
#   RUNS        the runs root (default runs/gpu_bench, runs/gpu_bench_quick with QUICK=1): never the CPU table's
#   QUICK=1     the smoke protocol (tiny world, a few steps): checks the script end to end on a CPU
#               (DEVICE=cpu QUICK=1 bash benchmarks/gpu_table.sh)
#
# The GPU numbers are a separate table, never merged with the CPU one: bf16 kernels, reduction orders and data
# loading differ, so the same seed does not give the same weights on the two devices.
set -euo pipefail

DEVICE=${DEVICE:-cuda}
JOBS=${JOBS:-4}
DEADLINE_S=${DEADLINE_S:-540}
RESULTS=${RESULTS:-${OUT:-docs/results/gpu}}
PROTOCOL=benchmarks/protocol.yaml
START=$(date +%s)
quick=()
if [[ "${QUICK:-0}" == 1 ]]; then quick=(--quick); fi
RUNS=${RUNS:-runs/gpu_bench${quick:+_quick}}

if [[ ! -f "$PROTOCOL" ]]; then
    echo "gpu_table: run me from the repository root ($PROTOCOL not found in $PWD)" >&2
    exit 2
fi
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_table.log"
exec > >(tee -a "$LOG") 2>&1

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# The carried wheels only where the interpreter lacks what they hold (a set-up machine needs none).
NEEDED="omegaconf kornia imagecorruptions"
has_all() { python3 -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" $NEEDED; }
if ! has_all && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30

python3 - "$DEVICE" <<'EOF'
import sys

import torch

device = sys.argv[1]
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit(f"gpu_table: DEVICE={device} but torch {torch.__version__} sees no CUDA device")
name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
print(f"gpu_table: torch {torch.__version__} on {name}")
import kornia, omegaconf  # noqa: E401,F401  (fail here, naming the missing wheel, not inside a worker)
from robustdepth.evaluation.corruptions import _imagecorruptions

_imagecorruptions()
EOF

# The console script is not installed there (no pip install of the package): the CLI's entry point, directly.
ROBUSTDEPTH=(python3 -c 'import sys; from robustdepth.cli import main; sys.exit(main())')
SEEDS=$(python3 -c "import sys; from robustdepth.bench.protocol import table_protocol
print(*table_protocol('$PROTOCOL', quick=${#quick[@]} > 0).run_seeds)")

done_seeds=()
for seed in $SEEDS; do
    left=$(( DEADLINE_S - ($(date +%s) - START) ))
    if (( left < 30 )); then
        echo "gpu_table: deadline reached before seed $seed (${DEADLINE_S}s); the table holds seeds ${done_seeds[*]:-none}"
        break
    fi
    set +e
    timeout --signal=INT --kill-after=20 "$left" \
        "${ROBUSTDEPTH[@]}" bench methods --protocol "$PROTOCOL" "${quick[@]}" --device "$DEVICE" --jobs "$JOBS" \
        --runs "$RUNS" --seeds "${done_seeds[@]}" "$seed" --out "$RESULTS"
    rc=$?
    set -e
    if (( rc != 0 )); then
        echo "gpu_table: seed $seed stopped (exit $rc) after $(( $(date +%s) - START ))s; the table holds seeds ${done_seeds[*]:-none}"
        break
    fi
    done_seeds+=("$seed")
    echo "gpu_table: seeds ${done_seeds[*]} done after $(( $(date +%s) - START ))s"
done
