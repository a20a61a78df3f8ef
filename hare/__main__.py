"""`python -m hare` is the `hare` command."""

from hare.cli.main import main

raise SystemExit(main())
