"""``python -m streams.cli``: the ``kessai`` command without its console script (the
bench and the tests start workers this way, so that a checkout's code runs)."""

from streams.cli import main

raise SystemExit(main())
