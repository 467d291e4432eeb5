"""``kessai topics create|list``: kessai's public topics on the broker
(:mod:`streams.topics`, created through :mod:`streams.kafka.admin`)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streams import topics as catalogue
from streams.cli._common import Commands
from streams.config import Settings
from streams.kafka import admin


def add_parser(commands: Commands) -> None:
    topics = commands.add_parser(
        "topics",
        help="create or list kessai's public topics",
        description=(
            f"kessai's {len(catalogue.CATALOGUE)} public topics, co-partitioned with "
            "KESSAI_PARTITIONS partitions; ledger-events and settlements keep their "
            "history forever."
        ),
    )
    actions = topics.add_subparsers(title="actions", dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser(
        "create",
        help="create the public topics that are missing (idempotent)",
        description=(
            "Create the public topics that are missing. Fails, creating nothing, if one "
            "exists with another partition count or a journal topic would expire."
        ),
    )
    create.set_defaults(handler=create_topics)
    listing = actions.add_parser(
        "list",
        help="show each public topic: key, partitions, retention",
        description="Show each public topic, its key, and its partitions on the broker.",
    )
    listing.set_defaults(handler=list_topics)


def create_topics(args: argparse.Namespace, settings: Settings) -> int:
    created = set(asyncio.run(admin.ensure_public_topics(settings)))
    for topic in catalogue.CATALOGUE:
        what = "created" if topic.name in created else "already present"
        print(f"{topic.name}: {what} ({settings.partitions} partitions)")
    return 0


def list_topics(args: argparse.Namespace, settings: Settings) -> int:
    states = asyncio.run(admin.describe_public_topics(settings))
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
