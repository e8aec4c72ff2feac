"""`python -m bert4rec` runs the command line."""

from bert4rec.cli import main

raise SystemExit(main())
