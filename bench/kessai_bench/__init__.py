"""``kessai bench``: measure kessai against what the broker and client can carry.

- :mod:`~kessai_bench.trades`: realistic ``trades`` records, the real payload size;
- :mod:`~kessai_bench.loadgen`: publishes them at a fixed rate or full speed;
- :mod:`~kessai_bench.passthrough`: the ceiling, a consume -> produce loop that does
  nothing, at-least-once or transactional;
- :mod:`~kessai_bench.variants`: what is measured (the extension point for the
  settlement pipeline under at_least_once / exactly_once, and matching);
- :mod:`~kessai_bench.observer`: latency, publish -> visible to read_committed;
- :mod:`~kessai_bench.runner`: one run, every variant side by side;
- :mod:`~kessai_bench.stats`: percentiles and ratios (pure);
- :mod:`~kessai_bench.report`: the machine, JSON and Markdown under ``bench/results/``;
- :mod:`~kessai_bench.memory`, :mod:`~kessai_bench.book`, :mod:`~kessai_bench.replay`,
  :mod:`~kessai_bench.signatures`: the other benches (``make bench-*``);
- :mod:`~kessai_bench.command`: what ``kessai bench`` runs (broker up, run, print).

Child processes (with their CPU time and peak RSS) are started with
:mod:`streams.devtools.processes`, as the demo and the tests start theirs. A benchmark
is never a timed test: CI runs a tiny one that checks the harness works.
"""

from pathlib import Path
from typing import Final

#: The kessai checkout this bench runs from (git revisions, the project's broker).
CHECKOUT: Final = Path(__file__).resolve().parents[2]
#: Where each run's directory goes: generated output, git-ignored (bench/README.md).
RESULTS: Final = CHECKOUT / "bench" / "results"
