"""The worker's memory per funded account (issue 7, item 4: "at most 1 KiB per account").

Funding a million accounts through the pipeline would take hours on a small machine,
so the state is written directly instead, exactly as the pipeline would have left it:
for each account count N, on a broker of its own (:func:`streams.devtools.localkafka.up_private`),

1. kessai's topics are created as ``kessai worker`` creates them;
2. the ``accounts`` and ``applied`` changelog topics are written with the records the
   ledger agent writes when it applies one cash deposit (JPYC) and one bond deposit
   (one ISIN) per account (:func:`ledger_writes`): the states come from the ledger's
   own pure step (:func:`streams.ledger.handler.account_step`), keys and values are
   serialized with each table's own codec (:func:`table_codecs`, read from the
   worker's faust app), and each record goes to the partition
   faust sends it to -- the partition of ``kessai-ledger-commands`` that the account's
   commands come from, which aiokafka's default partitioner (murmur2 of the UTF-8
   account id) chooses (:func:`command_partition`);
3. ``kessai worker`` starts, rebuilds both tables from the changelogs (faust's
   recovery), says ``Worker ready``; a few seconds later its ``VmRSS`` and ``VmHWM``
   are read from ``/proc/<pid>/status``;
4. with ``--touch K``, 1 JPYC is deposited through the pipeline into K of the accounts
   (:func:`touch`) and the RSS read again: recovery fills the tables with values read
   from Kafka, a running worker also holds the values its agents built;
5. the worker is stopped with SIGTERM, the broker too.

Bytes per account = (RSS(N) - RSS(0)) / N. An in-process ``tracemalloc`` profile
(:func:`profile_tables`, no Kafka) splits the cost of the tables between the values,
the keys and faust's store, and prices the values in other shapes.

That the prefill is what the pipeline writes is checked, not assumed:
``tests/integration/bench/test_memory.py`` funds accounts through a real worker and
compares both changelogs with the prefill record by record, partition by partition,
then lets a worker recover the prefill and settle a trade on it.

    python -m kessai_bench.memory --accounts 0,100000,1000000 --out DIR
"""

# The parts, one job each: common (the error, the log), records (what one funded
# account leaves in the changelogs, pure), prefill (writing them to Kafka), worker (the
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
    recovery_figures,
    run,
    touch,
)
from kessai_bench.memory.prefill import (
    PRODUCE_BATCH_BYTES_MAX,
    PRODUCE_CHUNK_ACCOUNTS,
    PRODUCE_LINGER_MS,
    Prefill,
    chunks,
    create_changelogs,
    create_kessai_topics,
    prefill,
)
from kessai_bench.memory.records import (
    ACCOUNTS_MAX,
    BOND_FACE,
    BOND_ISIN,
    CASH_TOKEN,
    CASH_UNITS,
    RAW_CODEC,
    TABLES,
    TOKENS,
    ChangelogRecord,
    Funding,
    TableCodec,
    account_value,
    command_partition,
    deposits,
    funding,
    ledger_writes,
    moves,
    right_sized,
    table_codecs,
)
from kessai_bench.memory.report import NOTES, TARGET_BYTES_PER_ACCOUNT, markdown, write
from kessai_bench.memory.tables_profile import (
    PROFILE_ACCOUNTS,
    SHAPE_BYTES,
    SHAPE_DICTS,
    SHAPE_ORJSON,
    SHAPE_TUPLES,
    current_shape,
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
    remaining,
)
from streams.topics import CHANGELOG_CONFIG

__all__ = [
    "ACCOUNTS_MAX",
    "BOND_FACE",
    "BOND_ISIN",
    "CASH_TOKEN",
    "CASH_UNITS",
    "CHANGELOG_CONFIG",
    "MILESTONES",
    "NOTES",
    "PRODUCE_BATCH_BYTES_MAX",
    "PRODUCE_CHUNK_ACCOUNTS",
    "PRODUCE_LINGER_MS",
    "PROFILE_ACCOUNTS",
    "PROGRESS_EVERY_S",
    "RAW_CODEC",
    "RECOVERY_TIMEOUT_S",
    "RSS_SAMPLES",
    "SETTLE_S",
    "SHAPE_BYTES",
    "SHAPE_DICTS",
    "SHAPE_ORJSON",
    "SHAPE_TUPLES",
    "TABLES",
    "TARGET_BYTES_PER_ACCOUNT",
    "TOKENS",
    "TOUCH_ACCOUNTS",
    "TOUCH_TIMEOUT_S",
    "ChangelogRecord",
    "Funding",
    "Log",
    "MemoryBenchError",
    "Prefill",
    "TableCodec",
    "Worker",
    "account_value",
    "chunks",
    "command_partition",
    "create_changelogs",
    "create_kessai_topics",
    "current_shape",
    "deposits",
    "funding",
    "ledger_writes",
    "main",
    "markdown",
    "measure",
    "milestone",
    "moves",
    "parse_accounts",
    "parse_env",
    "per_account",
    "prefill",
    "proc_status_kib",
    "profile_tables",
    "recovery_figures",
    "remaining",
    "replay_rss",
    "replay_rss_in_child",
    "right_sized",
    "run",
    "table_codecs",
    "touch",
    "write",
]
