"""``kessai publish TOPIC FILE``: hand-made records onto an input topic
(:mod:`streams.kafka.publish`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from streams import topics as catalogue
from streams.cli._common import Commands
from streams.config import Settings
from streams.kafka.publish import publish_file


def add_parser(commands: Commands) -> None:
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
    known = ", ".join(catalogue.INPUT_TOPICS)
    publish.add_argument("topic", metavar="TOPIC", help=f"one of: {known}")
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
    publish.add_argument(
        "--now",
        action="store_true",
        help=(
            "trades: stamp each trade_time with the time of publishing (the examples' "
            "fixed times are older than the engine's window, KESSAI_TRADE_WINDOW_S)"
        ),
    )

    def check(args: argparse.Namespace) -> None:
        if args.topic not in catalogue.INPUT_TOPICS:
            publish.error(f"unknown topic {args.topic!r}; known topics: {known}")
        if args.now and args.topic != "trades":
            publish.error("--now stamps trades' trade_time: only with TOPIC trades")

    publish.set_defaults(handler=run, check=check)


def run(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC).replace(microsecond=0) if args.now else None
    return publish_file(
        settings,
        args.topic,
        args.file,
        topic_name=args.topic_name,
        progress=args.progress,
        now=now,
    )
