"""`python -m hare` is the `hare` command."""

from hare.cli.main import main

if __name__ == "__main__":  # not when a spawned prefork child imports it as `__mp_main__`
    raise SystemExit(main())
