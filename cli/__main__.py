"""`python -m moot.cli ...`: the `moot` command, for environments without the script on PATH."""

from ._main import main

raise SystemExit(main())
