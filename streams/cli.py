"""The ``kessai`` command: one entry point for the broker, the topics, data and workers.

Thin by design: each subcommand parses its arguments and calls one function of the
module that does the work (:mod:`streams.localkafka`, :mod:`streams.topics`,
:mod:`streams.publish`, :mod:`streams.positions`, :mod:`streams.app`,
:mod:`streams.demo`, :mod:`streams.bench`). Settings come from the environment
(:meth:`streams.config.Settings.from_env`), never from flags, so that the worker, the
tests and the command line always agree on them.

Exit codes: 0 success; 1 failure (printed as ``kessai: error: ...``, no traceback);
2 a usage error (argparse's convention); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import orjson
from aiokafka.errors import KafkaError

from schemas import LEDGER_EVENTS, SETTLEMENTS
from schemas._isin import is_valid_isin
from streams import localkafka, positions, signers, topics
from streams.audit import command as audit_command
from streams.bench import command as bench_command
from streams.bench import runner as bench_runner
from streams.bench import variants as bench_variants
from streams.bench.procs import ChildFailed
from streams.config import PROJECT_ROOT, Settings
from streams.kafkaio import CreateTopicsError
from streams.matching import view as matching_view
from streams.publish import PublishError, publish_file
from streams.signing import ROLE_TOPICS, RegistryError

__all__ = ["main"]

PROG = "kessai"
#: Where `kessai worker` hands its arguments: faust's own command line.

Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kessai`` with *argv* (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = _parse(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exit_:  # --help, or a usage error argparse has printed
        return _exit_code(exit_)
    try:
        settings = Settings.from_env()
    except ValueError as err:  # a malformed KESSAI_* variable
        return _fail(str(err))
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except (
        localkafka.LocalKafkaError,
        topics.TopicsError,
        PublishError,
        positions.JournalError,
        RegistryError,
        CreateTopicsError,
        bench_runner.BenchError,
        ChildFailed,
    ) as err:
        return _fail(str(err))
    except KafkaError as err:
        return _fail(f"Kafka at {settings.bootstrap}: {err!r}; is it up? (`kessai kafka status`)")
    except KeyboardInterrupt:
        return 130


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; raises SystemExit as argparse does."""
    parser = _parser()
    # parse_known_args: whatever follows `worker` belongs to faust, options included.
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    if args.command == "worker":
        args.worker_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "publish" and args.topic not in topics.INPUT_TOPICS:
        args.subparser.error(
            f"unknown topic {args.topic!r}; known topics: {', '.join(topics.INPUT_TOPICS)}"
        )
    return args


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "kessai (決済): settle tokenized JGB trades against stablecoin payments, "
            "exactly once, on Kafka."
        ),
        epilog=(
            "Settings come from the environment: KESSAI_BOOTSTRAP (default 127.0.0.1:9092), "
            "KESSAI_PARTITIONS, KESSAI_TOKENS, KESSAI_STATE_DIR, KESSAI_APP_ID. "
            "Run `kessai COMMAND --help` for each command."
        ),
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    kafka = commands.add_parser(
        "kafka",
        help="run a local single-node Kafka for development and tests",
        description=(
            "Run a local single-node Kafka broker (KRaft) from Maven jars under "
            "KESSAI_STATE_DIR (default .kessai/). It outlives this command; "
            "`kessai kafka down` stops it. With KESSAI_BOOTSTRAP pointing elsewhere, "
            "nothing is started or stopped. Without --secure it is the open development "
            "profile (no authentication, no ACLs); --secure runs the secure profile: "
            "SASL/SCRAM-SHA-512 over TLS and Kafka ACLs, on 127.0.0.1:9192 under "
            "KESSAI_STATE_DIR/kafka-secure, with an env file per principal in "
            "kafka-secure/secure/env/."
        ),
    )
    kafka_actions = kafka.add_subparsers(title="actions", dest="action", metavar="ACTION")
    kafka_actions.required = True
    for name, text in (
        ("up", "start the local broker if it is not running; wait until it answers"),
        ("down", "stop the local broker kessai started"),
        ("status", "say whether the broker answers; exit 1 if not"),
        ("reset", "stop the broker and DELETE all its topics and data (needs --yes)"),
    ):
        action = kafka_actions.add_parser(name, help=text, description=text[0].upper() + text[1:])
        action.add_argument(
            "--timeout-s", type=float, default=None, help="how long to wait for the broker"
        )
        action.add_argument(
            "--secure",
            action="store_true",
            help="the secure profile (SASL_SSL + ACLs); implied by KESSAI_KAFKA_SECURITY=sasl_ssl",
        )
        if name == "reset":
            action.add_argument(
                "--yes",
                action="store_true",
                help="confirm: every topic, the ledger journal included, is deleted",
            )
        action.set_defaults(handler=_kafka)
    secrets_cmd = kafka_actions.add_parser(
        "compose-secrets",
        help="write deploy/compose.yaml's secure files (certificates, passwords, keys, ACLs)",
        description=(
            "Write what the compose stack mounts at /secrets: a CA and a certificate for the "
            "broker `kafka`, a password per principal, the signers' keys and registry, the "
            "broker's server.properties, its start script (SCRAM users made at format time) "
            "and the ACL script, and an env file per principal for the stack (env/) and for "
            "the host (host-env/). Existing certificates, passwords and keys are kept."
        ),
    )
    secrets_cmd.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "deploy" / "secrets",
        help="the folder (default deploy/secrets, git-ignored)",
    )
    secrets_cmd.set_defaults(handler=_compose_secrets)

    topics_cmd = commands.add_parser(
        "topics",
        help="create or list kessai's public topics",
        description=(
            "kessai's seven public topics, co-partitioned with KESSAI_PARTITIONS partitions; "
            "ledger-events and settlements keep their history forever."
        ),
    )
    topic_actions = topics_cmd.add_subparsers(title="actions", dest="action", metavar="ACTION")
    topic_actions.required = True
    create = topic_actions.add_parser(
        "create",
        help="create the public topics that are missing (idempotent)",
        description=(
            "Create the public topics that are missing. Fails, creating nothing, if one "
            "exists with another partition count or a journal topic would expire."
        ),
    )
    create.set_defaults(handler=_topics_create)
    listing = topic_actions.add_parser(
        "list",
        help="show each public topic: key, partitions, retention",
        description="Show each public topic, its key, and its partitions on the broker.",
    )
    listing.set_defaults(handler=_topics_list)

    publish = commands.add_parser(
        "publish",
        help="validate a JSON-lines file and publish it to an input topic",
        description=(
            "Publish one JSON record per line of FILE to TOPIC. Every line is validated "
            "first; if any is invalid, each is printed as FILE:LINE: reason: detail and "
            "nothing is published (exit 1). Records are sent in canonical form, keyed as "
            "kessai keys them."
        ),
    )
    publish.add_argument("topic", metavar="TOPIC", help=f"one of: {', '.join(topics.INPUT_TOPICS)}")
    publish.add_argument("file", metavar="FILE", help="a .jsonl file, or - for stdin")
    publish.add_argument(
        "--topic-name",
        metavar="NAME",
        default=None,
        help="send to topic NAME instead, still validating with TOPIC's schema (tests)",
    )
    publish.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )
    publish.set_defaults(handler=_publish, subparser=publish)

    positions_cmd = commands.add_parser(
        "positions",
        help="show every account's balances per asset as of any moment, from the journal",
        description=(
            "Show every account's available and locked balance per asset, rebuilt by "
            "replaying the committed records of ledger-events from the beginning (records "
            "of aborted transactions never count), up to the head of the log or --as-of. "
            "The replay checks the journal as it goes: each account's seq must run 1, 2, "
            "3, ... and each balance must be the previous one plus its delta. If it does "
            "not, the broken records are named and the exit code is 1. A summary with the "
            "records read per second goes to stderr."
        ),
    )
    _audit_arguments(positions_cmd)
    positions_cmd.add_argument(
        "--asset", metavar="X", default=None, help="only positions in asset X (token or ISIN)"
    )
    positions_cmd.add_argument(
        "--format",
        choices=positions.FORMATS,
        default="table",
        help="table (default), json (amounts as decimal strings) or csv",
    )
    positions_cmd.set_defaults(handler=_positions)

    verify_cmd = commands.add_parser(
        "verify",
        help="check the journal's hash chains; print each account's root and the journal's",
        description=(
            "Walk every account's hash chain on ledger-events (committed records, up to the "
            "head or --as-of): recompute each record's SHA-256 over its canonical bytes "
            "(docs/journal.md) and check it links to the account's record before. Reports "
            "every gap, reordered, altered or unlinked record, and exits 1 if there is one. "
            "Prints each account's root (the hash of its last record) and the journal root "
            "(SHA-256 over the accounts' roots), which a counterparty holding the journal "
            "can recompute independently."
        ),
    )
    _audit_arguments(verify_cmd)
    verify_cmd.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table (default), json (with the problems) or csv",
    )
    verify_cmd.set_defaults(handler=_verify)

    evidence_cmd = commands.add_parser(
        "verify-settlements",
        help="check every settlement back to the venue that signed its trade",
        description=(
            "Read every committed settlements record and check its signed_trade with the "
            "signer registry (KESSAI_SIGNERS_FILE) alone: the signature verifies and the "
            "signer may sign that trade; the signed trade is this settlement's (trade_id, "
            "isin, buyer, seller, quantity, currency); and the cash that settled is what "
            "the signed trade makes. Prints a summary and each problem (topic/partition@"
            "offset); exits 1 on any problem, or on an unsigned settlement when signatures "
            "are required. See docs/security.md."
        ),
    )
    evidence_cmd.add_argument(
        "--require-signed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an unsigned settlement is a problem (default: when signatures are checked)",
    )
    evidence_cmd.add_argument(
        "--topic-name",
        metavar="NAME",
        default=SETTLEMENTS,
        help=f"read topic NAME instead of {SETTLEMENTS} (a copy, or tests)",
    )
    evidence_cmd.set_defaults(handler=_verify_settlements)

    replay_cmd = commands.add_parser(
        "replay",
        help="re-run the pure cores over the committed logs and reconcile with the outputs",
        description=(
            "Read every committed record of kessai's topics (nothing is written), re-run "
            "the agents' own per-record logic in this process (intakes over payments, "
            "custody and trades; the ledger over its command log; the settlement sagas "
            "over their inbox; the matcher over orders) and compare what it derives with "
            "ledger-events, settlements, order-events, the matcher's trades, rejections, "
            "the internal logs, the tables' changelogs and, with --worker, the live "
            "accounts table. Prints one line per check and each check's first "
            "differences (where on its topic, derived vs found); exit code 1 if any "
            "check differs. Run it with the worker's settings (KESSAI_TOKENS, "
            "KESSAI_SETTLEMENT_DEADLINE_S, KESSAI_APP_ID): they are part of the logic."
        ),
    )
    replay_cmd.add_argument(
        "--topic",
        metavar="NAME=COPY",
        action="append",
        default=[],
        help="read topic COPY in place of NAME (e.g. ledger-events=journal-copy); repeatable",
    )
    replay_cmd.add_argument(
        "--worker",
        metavar="URL",
        action="append",
        default=[],
        help=(
            "also compare each account with the live table: GET URL/positions/ACCOUNT "
            "(e.g. http://127.0.0.1:6066); give one per worker"
        ),
    )
    replay_cmd.set_defaults(handler=_replay)

    signers_cmd = commands.add_parser(
        "signers",
        help="keep the signer registry: venues', the bridge's and the matcher's public keys",
        description=(
            "Keep the signer registry (KESSAI_SIGNERS_FILE, or --registry) that workers "
            "check every trade, order, payment and custody record against when signature "
            "checks are on (KESSAI_VERIFY_SIGNATURES, or the sasl_ssl profile). A venue "
            "signs trades and orders for the accounts listed with it; the bridge signs "
            "payments and custody; the matcher signs the trades it makes. See "
            "docs/security.md."
        ),
    )
    signer_actions = signers_cmd.add_subparsers(title="actions", dest="action", metavar="ACTION")
    signer_actions.required = True
    add_cmd = signer_actions.add_parser(
        "add",
        help="add a signer, making its key pair unless --public-key is given",
        description=(
            "Add a signer. Without --public-key, a new Ed25519 key pair is made: the "
            "private key goes to --key-out (mode 0600) for the signer to keep, the public "
            "key into the registry."
        ),
    )
    add_cmd.add_argument("signer_id", metavar="ID", help="the signer's id: a venue's `venue`")
    add_cmd.add_argument("--role", required=True, choices=sorted(ROLE_TOPICS))
    add_cmd.add_argument(
        "--accounts",
        default="",
        help="a venue's accounts, comma-separated; a trailing * is a prefix (desk-7-*)",
    )
    add_cmd.add_argument(
        "--public-key", default=None, help="32 bytes, unpadded base64url, made elsewhere"
    )
    add_cmd.add_argument(
        "--key-out", type=Path, default=None, help="where the new private key goes"
    )
    remove_cmd = signer_actions.add_parser("remove", help="remove a signer")
    remove_cmd.add_argument("signer_id", metavar="ID")
    list_cmd = signer_actions.add_parser("list", help="who may sign what")
    for action in (add_cmd, remove_cmd, list_cmd):
        action.add_argument(
            "--registry",
            type=Path,
            default=None,
            help="the registry file (default: KESSAI_SIGNERS_FILE)",
        )
        action.set_defaults(handler=_signers)

    book_cmd = commands.add_parser(
        "book",
        help="show a bond's order books (depth per price level) as last committed",
        description=(
            "Show the order books of one bond, one per currency: price levels best "
            "first, with the face resting and the number of orders at each. Read from "
            "the matcher's committed state (the orders table's changelog, "
            "read_committed), so no worker needs to run, and it is exactly what a "
            "restarted worker resumes from."
        ),
    )
    book_cmd.add_argument("isin", metavar="ISIN", help="the bond, e.g. JP1103551Q43")
    book_cmd.add_argument(
        "--levels",
        type=_positive_int,
        default=matching_view.LEVELS_DEFAULT,
        metavar="N",
        help=f"price levels per side (default {matching_view.LEVELS_DEFAULT})",
    )
    book_cmd.add_argument(
        "--format", choices=("table", "json"), default="table", help="table (default) or json"
    )
    book_cmd.set_defaults(handler=_book)

    worker = commands.add_parser(
        "worker",
        help="run a kessai stream-processing worker (faust)",
        description=(
            "Run a kessai worker: the faust app in streams.app, which settles trades and "
            "keeps the ledger. Arguments after `worker` go to faust's `worker` command "
            "(e.g. `kessai worker -l info`); `kessai worker -- --help` shows them."
        ),
        allow_abbrev=False,
    )
    worker.set_defaults(handler=_worker)

    demo = commands.add_parser(
        "demo",
        help="run the end-to-end demo against the broker",
        description=(
            "Run the end-to-end demo: fund accounts, let a simulated venue publish "
            "trades (some short of cash or bonds, some bad), deliver late deposits, then "
            "let two venues send orders that kessai's matcher turns into trades, and "
            "show what settled, waited, failed at the deadline or was rejected, each "
            "order's events, the matched trades, the order book and the balances; then "
            "keep the worker running until Ctrl-C."
        ),
    )
    demo.add_argument(
        "--once",
        action="store_true",
        help="stop the worker after the story and exit 0 only if every outcome arrived",
    )
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser(
        "bench",
        help="measure throughput, latency, CPU and memory against the raw ceiling",
        description=(
            "Benchmark side by side in one run: a load generator publishes realistic "
            "trades at a fixed rate, at full speed or as a backlog drained afterwards, "
            "into each variant: the raw passthrough ceiling (a plain aiokafka "
            "consume->produce loop doing no processing, at-least-once and "
            "transactional, on the local broker, started if need be) and the settlement "
            "pipeline (kessai worker with funded accounts, at_least_once and "
            "exactly_once, on a fresh broker of its own per measurement). For each: "
            "outputs/s (trades settled/s for the pipeline), Kafka records/s, latency "
            "p50/p95/p99 from publish to visible to a read_committed consumer, the "
            "process's CPU time and peak RSS; then the ratios. Results (JSON, Markdown "
            "and a PNG chart, with the machine) go to OUT/<UTC date-time>/. Partitions: "
            "KESSAI_PARTITIONS. A benchmark, not a test: keep the machine otherwise "
            "idle for figures worth quoting."
        ),
        epilog=(
            "Examples: `kessai bench` (full speed, half of it, then a backlog; 10 s of "
            "publishing each); "
            "`kessai bench --rate 2000 --seconds 30`; "
            "`kessai bench --variants raw-transactional --count 100000 --rate 0`; "
            "`kessai bench --variants all --rate 40,backlog` (every optimisation too)."
        ),
    )
    bench.add_argument(
        "--variants",
        type=_variant_list,
        default=list(bench_variants.DEFAULT_VARIANTS),
        metavar="V[,V...]",
        help=(
            "what to measure, in order, or `all` "
            f"(default: {', '.join(bench_variants.DEFAULT_VARIANTS)}; known: "
            f"{', '.join(bench_variants.VARIANTS)}; a `+tweak` variant is the exactly-once "
            "pipeline with one optimisation, compared with the one without)"
        ),
    )
    bench.add_argument(
        "--rate",
        type=_rate_list,
        default=[0.0, bench_runner.HALF, bench_runner.BACKLOG],
        metavar="R[,R...]",
        help=(
            "loads, each measured for every variant: records/s, 0 for full speed, `half` "
            "for half the slowest variant's full-speed throughput of this run, or "
            "`backlog`: publish first, then start the process and time how fast it "
            "drains (its own top speed; no latency) (default: 0,half,backlog)"
        ),
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="publish for this long per measurement (default 10 unless --count is given)",
    )
    bench.add_argument(
        "--count",
        type=int,
        default=None,
        help="publish this many records per measurement (with --seconds: whichever first)",
    )
    bench.add_argument(
        "--commit-interval-ms",
        type=float,
        default=None,
        help="offset commit / transaction interval (default KESSAI_COMMIT_INTERVAL_S)",
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=bench_command.DEFAULT_OUT,
        help="results directory; each run writes a dated directory in it (default bench/results/)",
    )
    bench.add_argument(
        "--drain-idle-s",
        type=float,
        default=15.0,
        help="give up waiting for outputs after this long without one (default 15)",
    )
    bench.add_argument(
        "--profile",
        type=_variant_list,
        default=[],
        metavar="V[,V...]",
        help=(
            "profile these variants' process with py-spy while it works; the top "
            "entries go in the results, the collapsed stacks beside them"
        ),
    )
    bench.add_argument(
        "--pipeline-count",
        type=int,
        default=5_000,
        metavar="N",
        help=(
            "publish at most N trades per pipeline measurement (default 5000): it "
            "settles hundreds a second where the raw ceiling copies tens of thousands, "
            "so the same --seconds would leave it hours of backlog"
        ),
    )
    bench.add_argument(
        "--baseline",
        metavar="REV",
        default=None,
        help=(
            "also measure the exactly-once pipeline of git revision REV (a worktree, same "
            "venv), right after this checkout's: an optimisation's before and after in "
            "one run"
        ),
    )
    bench.add_argument(
        "--keep-topics",
        action="store_true",
        help="keep the bench topics afterwards (default: deleted after each measurement)",
    )
    bench.set_defaults(handler=_bench)
    return parser


def _variant_list(text: str) -> list[str]:
    if text.strip() == "all":
        return list(bench_variants.VARIANTS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in bench_variants.VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(bench_variants.VARIANTS)}"
        )
    return names


def _rate_list(text: str) -> list[bench_runner.RateSpec]:
    try:
        return bench_runner.parse_rates(text)
    except bench_runner.BenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# -------------------------------------------------------------------------- handlers


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _kafka_action(args, settings)
    except ValueError as err:  # localkafka's verdict on a malformed KESSAI_BOOTSTRAP
        return _fail(str(err))


#: Said on stderr each time the open profile is brought up.
PLAINTEXT_WARNING = (
    "WARNING: this is the OPEN development profile of Kafka: no authentication, no ACLs. "
    "Anyone who reaches {bootstrap} can publish trades and payments, and read every "
    "account's ledger. Use `kessai kafka up --secure` (SASL/SCRAM over TLS with ACLs) "
    "for anything but development on this machine."
)


def _compose_secrets(args: argparse.Namespace, settings: Settings) -> int:
    from streams.deploysecure import write_compose_secrets

    written = write_compose_secrets(args.out, partitions=settings.partitions)
    print(f"wrote {len(written)} files and the credentials, keys and env files in {args.out}")
    print("then: docker compose -f deploy/compose.yaml up -d --build (see its header)")
    return 0


def _kafka_action(args: argparse.Namespace, settings: Settings) -> int:
    timeout: dict[str, float] = {} if args.timeout_s is None else {"timeout_s": args.timeout_s}
    if args.secure:
        settings = localkafka.secure_profile(settings)
    if args.action == "up":
        if settings.kafka_security == "plaintext":
            print(PLAINTEXT_WARNING.format(bootstrap=settings.bootstrap), file=sys.stderr)
        status = localkafka.up(settings, log=lambda line: print(line, file=sys.stderr), **timeout)
        print(status.message)
        if status.managed and str(status.log_file) not in status.message:
            print(f"log: {status.log_file}")
        if settings.kafka_security == "sasl_ssl" and status.managed:
            env = localkafka.env_file(settings, "worker")
            print(
                f"clients: `set -a; . {env}; set +a` (one env file per principal in {env.parent})"
            )
        return 0
    if args.action == "down":
        stopped = localkafka.down(settings, **timeout)
        print("stopped" if stopped else "nothing to stop: kessai's broker was not running")
        return 0
    if args.action == "reset":
        data_dir = localkafka.status(settings).data_dir
        if not args.yes:
            return _fail(
                f"reset deletes every topic and record in {data_dir}, the ledger journal "
                f"included; run `kessai kafka reset{' --secure' if args.secure else ''} --yes` "
                f"to do it"
            )
        localkafka.reset(settings, **timeout)
        print(f"stopped the broker and deleted {data_dir}")
        return 0
    assert args.action == "status", args.action
    status = localkafka.status(settings)
    print(status.message)
    return 0 if status.running else 1


def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    created = set(asyncio.run(topics.ensure_topics(settings)))
    for topic in topics.CATALOGUE:
        what = "created" if topic.name in created else "already present"
        print(f"{topic.name}: {what} ({settings.partitions} partitions)")
    return 0


def _topics_list(args: argparse.Namespace, settings: Settings) -> int:
    states = asyncio.run(topics.describe_topics(settings))
    width = max(len(s.physical_name) for s in states)
    for state in states:
        retention = "forever" if state.topic.config else "broker default"
        if state.partitions is None:
            where = "MISSING"
        elif state.partitions != settings.partitions:
            where = f"{state.partitions} partitions (want {settings.partitions})"
        else:
            where = f"{state.partitions} partitions"
        drift = state.config_drift() if state.exists else {}
        if drift:
            retention += " (broker has " + ", ".join(f"{k}={h}" for k, (h, _) in drift.items())
            retention += ")"
        print(
            f"{state.physical_name:<{width}}  {where:<14}  key={state.topic.key_field:<8}  "
            f"retention: {retention}  -- {state.topic.description}"
        )
    if any(not s.exists for s in states):
        print("create the missing topics with `kessai topics create`", file=sys.stderr)
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    return publish_file(
        settings, args.topic, args.file, topic_name=args.topic_name, progress=args.progress
    )


def _audit_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--as-of",
        metavar="T",
        default=None,
        help=(
            "stop at T: an ISO-8601 time with a zone (2026-11-28T03:00:00+09:00, or ...Z): "
            "every record stamped at or before T counts; or offsets: N (every partition "
            "up to, not including, offset N) or P:O[,P:O...] (partition P up to offset O; "
            "partitions not named are read to the head). Default: the head of the log"
        ),
    )
    command.add_argument(
        "--account", metavar="A", default=None, help="only show account A (the fold reads all)"
    )
    command.add_argument(
        "--topic-name",
        metavar="NAME",
        default=LEDGER_EVENTS,
        help=f"read topic NAME instead of {LEDGER_EVENTS} (a copy, or tests)",
    )
    command.add_argument(
        "--jobs",
        metavar="N",
        type=_positive_int,
        default=None,
        help=(
            "read and fold in N processes, each with its own partitions "
            "(default: two per core, at most one per partition)"
        ),
    )
    command.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: only when stderr is a terminal)",
    )


def _positions(args: argparse.Namespace, settings: Settings) -> int:
    return audit_command.positions_main(
        settings,
        topic=args.topic_name,
        as_of=args.as_of,
        account=args.account,
        asset=args.asset,
        fmt=args.format,
        progress=args.progress,
        jobs=args.jobs,
    )


def _signers(args: argparse.Namespace, settings: Settings) -> int:
    registry = args.registry or settings.signers_file
    if registry is None:
        return _fail("no registry: set KESSAI_SIGNERS_FILE or give --registry")
    if args.action == "list":
        return signers.show(registry, out=sys.stdout)
    if args.action == "remove":
        return signers.remove(registry, args.signer_id, out=sys.stdout)
    accounts = [a.strip() for a in args.accounts.split(",") if a.strip()]
    return signers.add(
        registry,
        args.signer_id,
        role=args.role,
        accounts=accounts,
        public_key=args.public_key,
        key_out=args.key_out,
        out=sys.stdout,
    )


def _verify_settlements(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit.evidence import verify_settlements_main

    required = settings.verify_signatures if args.require_signed is None else args.require_signed
    return verify_settlements_main(settings, topic=args.topic_name, require_signed=required)


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    return audit_command.verify_main(
        settings,
        topic=args.topic_name,
        as_of=args.as_of,
        account=args.account,
        fmt=args.format,
        progress=args.progress,
        jobs=args.jobs,
    )


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.audit import replay  # faust and the agents' logic: only when asked

    topics = {}
    for item in args.topic:
        name, sep, copy = item.partition("=")
        if not sep or name not in replay.TOPICS or not copy:
            return _fail(
                f"--topic {item!r}: want NAME=COPY, NAME one of {', '.join(replay.TOPICS)}"
            )
        topics[name] = copy
    report = replay.replay(
        settings,
        topics=topics,
        workers=args.worker,
        log=lambda line: print(line, file=sys.stderr),
    )
    sys.stdout.write(report.render())
    return 0 if report.ok else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _book(args: argparse.Namespace, settings: Settings) -> int:
    if not is_valid_isin(args.isin):
        return _fail(f"{args.isin!r} is not an ISIN (2 letters, 9 letters or digits, check digit)")
    try:
        books = asyncio.run(
            matching_view.read_books(
                settings.bootstrap, settings.app_id, args.isin, settings=settings
            )
        )
    except TimeoutError as err:
        return _fail(str(err))
    if args.format == "json":
        print(orjson.dumps(matching_view.depth_json(books, args.levels)).decode())
    else:
        sys.stdout.write(matching_view.depth_table(args.isin, books, args.levels))
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    rest: list[str] = list(args.worker_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    app = _import_lazily("streams.app", "the worker")
    if app is None:
        return 1
    try:
        app.main(rest)
    except SystemExit as exit_:
        return _exit_code(exit_)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    demo = _import_lazily("streams.demo", "the demo")
    if demo is None:
        return 1
    try:
        result: object = demo.main(settings, once=args.once)
    except SystemExit as exit_:
        return _exit_code(exit_)
    return result if isinstance(result, int) else 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    seconds = args.seconds if args.seconds is not None or args.count is not None else 10.0
    interval = (
        args.commit_interval_ms
        if args.commit_interval_ms is not None
        else settings.commit_interval_s * 1000
    )
    return bench_command.main(
        settings,
        variants=args.variants,
        rates=args.rate,
        seconds=seconds,
        count=args.count,
        commit_interval_ms=interval,
        out=args.out,
        drain_idle_s=args.drain_idle_s,
        keep_topics=args.keep_topics,
        profile=args.profile,
        baseline=args.baseline,
        pipeline_count=args.pipeline_count,
        command=_command_line(),
    )


def _command_line() -> str:
    """This process's command line as `kessai ...`, for the record of a run."""
    rest = sys.argv[1:] if sys.argv[1:2] == ["bench"] else ["bench"]
    return shlex.join([PROG, *rest])


def _import_lazily(module: str, what: str) -> ModuleType | None:
    """Import *module* only when its command runs, so the rest of the CLI never needs it
    (nor faust's start-up cost). None, with the error printed, if it is not there."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise  # the module exists but something it imports is missing: show it all
        _fail(f"{what} is not available: module {module} does not exist yet")
        return None


def _exit_code(exit_: SystemExit) -> int:
    """The exit code a ``SystemExit`` stands for, as the interpreter would pick it."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
