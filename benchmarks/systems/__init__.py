"""One driver per system measured (hare, a raw aiormq loop, Celery, Dramatiq, Taskiq).

Each module builds a `benchmarks.procedures.System`; it is also the app module its worker CLI
imports, so it reads its broker URL and knobs from the environment (`BENCH_URL`, ...).
"""
