"""hare's benchmarks: measurements, not tests. `python -m benchmarks --help`."""
