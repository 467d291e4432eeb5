"""``kessai kafka up|down|status|reset|compose-secrets``: the local broker for
development and tests (:mod:`streams.devtools.localkafka`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Final

from aiokafka.errors import KafkaError

from streams.cli._common import PROG, Commands, fail
from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.localkafka import cluster as localcluster
from streams.devtools.localkafka.cluster import Cluster
from streams.kafka.admin import out_of_sync_partitions

#: Said on stderr each time the open profile is brought up.
#: Partitions out of sync that ``status`` names (it counts them all).
SYNC_SHOWN_MAX: Final = 5

PLAINTEXT_WARNING = (
    "WARNING: this is the OPEN development profile of Kafka: no authentication, no ACLs. "
    "Anyone who reaches {bootstrap} can publish trades and payments, and read every "
    "account's ledger. Use `kessai kafka up --secure` (SASL/SCRAM over TLS with ACLs) "
    "for anything but development on this machine."
)

_ACTIONS = (
    ("up", "start the local broker if it is not running; wait until it answers"),
    ("down", "stop the local broker kessai started"),
    ("status", "say whether the broker answers; exit 1 if not"),
    ("reset", "stop the broker and DELETE all its topics and data (needs --yes)"),
)


def add_parser(commands: Commands) -> None:
    kafka = commands.add_parser(
        "kafka",
        help="run a local single-node Kafka for development and tests",
        description=(
            "Run a local single-node Kafka broker (KRaft) from Maven jars under "
            "KESSAI_STATE_DIR (default ./.kessai/). It outlives this command; "
            "`kessai kafka down` stops it. With KESSAI_BOOTSTRAP pointing elsewhere, "
            "nothing is started or stopped. Without --secure it is the open development "
            "profile (no authentication, no ACLs); --secure runs the secure profile: "
            "SASL/SCRAM-SHA-512 over TLS and Kafka ACLs, on 127.0.0.1:9192 under "
            "KESSAI_STATE_DIR/kafka-secure, with an env file per principal in "
            "kafka-secure/secure/env/."
        ),
    )
    actions = kafka.add_subparsers(title="actions", dest="action", metavar="ACTION")
    actions.required = True
    for name, text in _ACTIONS:
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:])
        action.add_argument(
            "--timeout-s", type=float, default=None, help="how long to wait for the broker"
        )
        action.add_argument(
            "--secure",
            action="store_true",
            help="the secure profile (SASL_SSL + ACLs); implied by KESSAI_KAFKA_SECURITY=sasl_ssl",
        )
        if name in ("up", "down", "status"):
            action.add_argument(
                "--brokers",
                type=int,
                default=None,
                metavar="N",
                help=(
                    "a local cluster of N brokers and a controller instead of the single "
                    "broker, on 127.0.0.1:9292 and up, every topic replicated (3 from "
                    "three brokers on); down and status find it without it"
                ),
            )
        if name == "reset":
            action.add_argument(
                "--yes",
                action="store_true",
                help="confirm: every topic, the ledger journal included, is deleted",
            )
        action.set_defaults(handler=run)
    secrets = actions.add_parser(
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
    secrets.add_argument(
        "--out",
        type=Path,
        default=Path("deploy") / "secrets",
        help="the folder (default deploy/secrets under the working directory, git-ignored)",
    )
    secrets.set_defaults(handler=compose_secrets)


def compose_secrets(args: argparse.Namespace, settings: Settings) -> int:
    from streams.devtools.localkafka.compose import write_compose_secrets

    written = write_compose_secrets(args.out, partitions=settings.partitions)
    print(f"wrote {len(written)} files and the credentials, keys and env files in {args.out}")
    print("then: docker compose -f deploy/compose.yaml up -d --build (see its header)")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    timeout: dict[str, float] = {} if args.timeout_s is None else {"timeout_s": args.timeout_s}
    if getattr(args, "brokers", None) is not None:
        if args.secure:
            return fail("a local cluster runs the open profile only (no --secure)")
        return _cluster(args, settings, timeout)
    if args.action in ("down", "status") and Cluster.found(settings.state_dir) is not None:
        _cluster(args, settings, timeout)  # said as well; the single broker's answer counts
    if args.secure:
        settings = localkafka.secure_profile(settings)
    if args.action == "up":
        return _up(settings, timeout)
    if args.action == "down":
        stopped = localkafka.down(settings, **timeout)
        print("stopped" if stopped else "nothing to stop: kessai's broker was not running")
        return 0
    if args.action == "reset":
        data_dir = localkafka.status(settings).data_dir
        if not args.yes:
            secure = " --secure" if args.secure else ""
            return fail(
                f"reset deletes every topic and record in {data_dir}, the ledger journal "
                f"included; run `{PROG} kafka reset{secure} --yes` to do it"
            )
        localkafka.reset(settings, **timeout)
        print(f"stopped the broker and deleted {data_dir}")
        return 0
    assert args.action == "status", args.action
    status = localkafka.status(settings)
    print(status.message)
    return 0 if status.running else 1


def _up(settings: Settings, timeout: dict[str, float]) -> int:
    if settings.kafka_security == "plaintext":
        print(PLAINTEXT_WARNING.format(bootstrap=settings.bootstrap), file=sys.stderr)
    status = localkafka.up(settings, log=lambda line: print(line, file=sys.stderr), **timeout)
    print(status.message)
    if status.managed and str(status.log_file) not in status.message:
        print(f"log: {status.log_file}")
    if settings.kafka_security == "sasl_ssl" and status.managed:
        env = localkafka.env_file(settings, "worker")
        print(f"clients: `set -a; . {env}; set +a` (one env file per principal in {env.parent})")
    return 0


def _cluster(args: argparse.Namespace, settings: Settings, timeout: dict[str, float]) -> int:
    """``up|down|status --brokers N``: the local cluster
    (:mod:`streams.devtools.localkafka.cluster`)."""
    found = Cluster.found(settings.state_dir)
    brokers = args.brokers if args.brokers is not None else (found.brokers if found else 0)
    if brokers < 1 or brokers > 9:
        return fail(f"--brokers must be 1 to 9, not {brokers}")
    cluster = Cluster(settings.state_dir, brokers)
    if found is not None and found.brokers != brokers:
        return fail(
            f"a cluster of {found.brokers} brokers is under {found.root}; "
            f"`{PROG} kafka down` it and delete that folder to make one of {brokers}"
        )
    if args.action == "up":
        print(PLAINTEXT_WARNING.format(bootstrap=cluster.bootstrap), file=sys.stderr)
        nodes = localcluster.up(
            cluster, partitions=settings.partitions,
            log=lambda line: print(line, file=sys.stderr), **timeout,
        )  # fmt: skip
    elif args.action == "down":
        stopped = localcluster.down(cluster, **timeout)
        print(f"cluster: stopped {', '.join(stopped)}" if stopped else "cluster: nothing to stop")
        return 0
    else:
        nodes = localcluster.status(cluster)
    for node in nodes:
        state = f"running (pid {node.pid})" if node.alive else "not running"
        if node.alive and not node.answers:
            state += ", not answering yet"
        print(f"{node.name:<11} {node.address:<16} {state}; data {node.data_dir}")
    replication = localcluster.replication_for(brokers)
    print(f"clients: KESSAI_BOOTSTRAP={cluster.bootstrap} (replication {replication})")
    if any(n.answers for n in nodes if n.name != localcluster.CONTROLLER):
        _say_sync(dataclasses.replace(settings, bootstrap=cluster.bootstrap))
    return 0 if all(n.alive for n in nodes) else 1


def _say_sync(settings: Settings) -> None:
    """How many partitions have fewer in-sync replicas than replicas (a broker down, or
    back and still copying), naming the first few."""
    try:
        behind = asyncio.run(out_of_sync_partitions(settings))
    except KafkaError as err:
        print(f"in sync: unknown ({err!r})")
        return
    if not behind:
        print("in sync: every partition of every topic")
        return
    shown = ", ".join(behind[:SYNC_SHOWN_MAX]) + (", ..." if len(behind) > SYNC_SHOWN_MAX else "")
    print(f"in sync: NOT {len(behind)} partitions (in-sync/replicas): {shown}")
