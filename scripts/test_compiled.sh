#!/usr/bin/env bash
# The optional compiled build (`HARE_COMPILE=1 pip install .`, hare/compiled.py) under the same
# tests as the pure-Python one: this checkout's files (committed or not) are copied to
# build/compiled, compiled there in place with mypyc (setup.py), and pytest runs from that copy
# with HARE_EXPECT_COMPILED=1, so a module that did not compile stops the run instead of
# passing as pure Python. Runs the unit tier, then the worker's broker tests (tests/amqp) on
# RabbitMQ 3.10; extra arguments replace that selection.
#
#   scripts/test_compiled.sh                 # what scripts/test.sh runs
#   scripts/test_compiled.sh tests/worker    # a selection
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=build/compiled
rm -rf "$dest"
mkdir -p "$dest"
git ls-files -co --exclude-standard | grep -v '^build/' | tar -cf - -T - | tar -xf - -C "$dest"
ln -s "$root/.venv" "$dest/.venv"
[ -d .pyamqp ] && ln -s "$root/.pyamqp" "$dest/.pyamqp"
echo "== compiled build: mypyc on $(.venv/bin/python -c 'from hare.compiled import COMPILED; print(len(COMPILED))') modules" >&2
(cd "$dest" && HARE_COMPILE=1 .venv/bin/python setup.py -q build_ext --inplace > build.log 2>&1) || {
    tail -40 "$dest/build.log" >&2
    echo "!! the compiled build failed (log: $dest/build.log)" >&2
    exit 1
}
cd "$dest"
export HARE_EXPECT_COMPILED=1
if [ "$#" -gt 0 ]; then
    .venv/bin/python -m pytest -p no:cacheprovider "$@"
    exit
fi
echo "== pytest, compiled build: unit tier" >&2
.venv/bin/python -m pytest -p no:cacheprovider -q \
    -m "not amqp and not fault and not slow and not cluster" \
    --ignore=tests/compat --ignore=tests/cluster --ignore=tests/celery_suite \
    --hypothesis-profile=unit
echo "== pytest, compiled build: tests/amqp on RabbitMQ 3.10" >&2
.venv/bin/python -m pytest -p no:cacheprovider -q tests/amqp
