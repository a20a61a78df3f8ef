"""`python -m hare` is the `hare` command."""

from hare.cli import main

raise SystemExit(main())
