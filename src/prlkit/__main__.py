"""`python -m prlkit` runs the command-line interface (same as the `prlkit` script)."""

from prlkit.cli import main

raise SystemExit(main())
