#!/usr/bin/env bash
# Run the demo: a worker and a producer in one process, printing what ran. Uses the broker at
# HARE_BROKER_URL (default amqp://guest:guest@localhost:5672/) when one answers, otherwise the
# in-process memory:// broker.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
exec .venv/bin/python examples/demo.py "$@"
