"""``python -m kessai_bench.memory``: see :mod:`kessai_bench.memory.command`."""

from kessai_bench.memory.command import main

raise SystemExit(main())
