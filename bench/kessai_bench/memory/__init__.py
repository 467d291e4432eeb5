"""The worker's memory per funded account (issue 7, item 4: "at most 1 KiB per account").

Funding a million accounts through the pipeline would take hours on a small machine,
so the settlement engine's state is written directly instead, exactly as the engine
would have written it: for each account count N, on a broker of its own
(:func:`streams.devtools.localkafka.up_private`),

1. kessai's topics are created as ``kessai worker`` creates them
   (:func:`streams.kafka.admin.ensure_worker_topics`), the engine's changelogs among
   them;
2. one cash deposit (JPYC) and one bond deposit (one ISIN) per account are applied
   in this process by the engine's own pure batches (:class:`Funder`:
   ``streams.engine.core.Batch``, the records the bridges would publish, as many per
   batch as the engine's largest batch), and the changelog rows those batches write
   go to ``{app_id}-engine-accounts`` (account id -> ``AccountState.to_bytes()``),
   ``{app_id}-engine-applied`` (command id -> ``1``) and ``{app_id}-engine-inflow``
   (asset -> units), partition 0, with a plain producer. No ``ledger-events`` and no
   manifest: a restore reads neither;
3. ``kessai worker`` starts, its engine restores the changelogs
   (:mod:`streams.engine.restore`) and logs ``engine: restored N rows in S s`` (the
   restore time reported); once ``GET /health`` answers 200 with the engine leading,
   and a few seconds later, its ``VmRSS`` and ``VmHWM`` are read from
   ``/proc/<pid>/status``;
4. with ``--touch K``, 1 JPYC is deposited through the pipeline into K of the accounts
   (:func:`touch`) and the RSS read again: a restore fills the engine with rows read
   from Kafka, a running engine also holds the rows its batches built;
5. the worker is stopped with SIGTERM, the broker too.

Bytes per account = (RSS(N) - RSS(0)) / N. An in-process ``tracemalloc`` profile
(:func:`profile_tables`, no Kafka) restores an engine from the same rows and splits
its cost between the accounts' rows, their keys, the applied ids and the containers.

That the prefill is what the pipeline writes is checked, not assumed:
``tests/integration/bench/test_memory.py`` funds accounts through a real worker and
compares the engine's changelogs with the prefill key by key (each key's last row),
then lets a worker restore the prefill and settle a trade on it.

    python -m kessai_bench.memory --accounts 0,100000,1000000 --out DIR
"""

# The parts, one job each: common (the error, the log), records (a funded account and
# the engine's rows for it, pure), prefill (writing them to Kafka), worker (the
# worker under measurement), measure (one measurement per count, bytes per account),
# tables_profile (in-process, no Kafka), report (memory.json and memory.md), command
# (the command line; __main__ runs it). What other modules and the tests use is here.

from kessai_bench.memory.command import main, parse_accounts, parse_env
from kessai_bench.memory.common import PROGRESS_EVERY_S, Log, MemoryBenchError
from kessai_bench.memory.measure import (
    RSS_SAMPLES,
    SETTLE_S,
    TOUCH_ACCOUNTS,
    TOUCH_TIMEOUT_S,
    measure,
    per_account,
    restore_figures,
    run,
    touch,
)
from kessai_bench.memory.prefill import (
    PRODUCE_BATCH_BYTES_MAX,
    PRODUCE_LINGER_MS,
    Prefill,
    create_kessai_topics,
    prefill,
)
from kessai_bench.memory.records import (
    ACCOUNTS_MAX,
    BOND_FACE,
    BOND_ISIN,
    CASH_TOKEN,
    CASH_UNITS,
    CHANGELOGS,
    FUND_BATCH_ACCOUNTS,
    FUND_CLOCK_S,
    TOKENS,
    ChangelogRow,
    Funder,
    Funding,
    chunks,
    command_ids,
    deposits,
    engine_rows,
    funding,
    right_sized,
    rules,
)
from kessai_bench.memory.report import NOTES, TARGET_BYTES_PER_ACCOUNT, markdown, write
from kessai_bench.memory.tables_profile import (
    PROFILE_ACCOUNTS,
    profile_tables,
    replay_rss,
    replay_rss_in_child,
)
from kessai_bench.memory.worker import (
    MILESTONES,
    RECOVERY_TIMEOUT_S,
    Worker,
    milestone,
    proc_status_kib,
    restored,
)

__all__ = [
    "ACCOUNTS_MAX",
    "BOND_FACE",
    "BOND_ISIN",
    "CASH_TOKEN",
    "CASH_UNITS",
    "CHANGELOGS",
    "FUND_BATCH_ACCOUNTS",
    "FUND_CLOCK_S",
    "MILESTONES",
    "NOTES",
    "PRODUCE_BATCH_BYTES_MAX",
    "PRODUCE_LINGER_MS",
    "PROFILE_ACCOUNTS",
    "PROGRESS_EVERY_S",
    "RECOVERY_TIMEOUT_S",
    "RSS_SAMPLES",
    "SETTLE_S",
    "TARGET_BYTES_PER_ACCOUNT",
    "TOKENS",
    "TOUCH_ACCOUNTS",
    "TOUCH_TIMEOUT_S",
    "ChangelogRow",
    "Funder",
    "Funding",
    "Log",
    "MemoryBenchError",
    "Prefill",
    "Worker",
    "chunks",
    "command_ids",
    "create_kessai_topics",
    "deposits",
    "engine_rows",
    "funding",
    "main",
    "markdown",
    "measure",
    "milestone",
    "parse_accounts",
    "parse_env",
    "per_account",
    "prefill",
    "proc_status_kib",
    "profile_tables",
    "replay_rss",
    "replay_rss_in_child",
    "restore_figures",
    "restored",
    "right_sized",
    "rules",
    "run",
    "touch",
    "write",
]
