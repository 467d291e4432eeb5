"""``python -m streams.devtools.localkafka up|down|status|reset [--secure]``.

The same commands as ``kessai kafka``, without the rest of kessai's CLI.
"""

from __future__ import annotations

import argparse
import sys

from streams.config import Settings
from streams.devtools import localkafka
from streams.devtools.localkafka.broker import down, reset, status, up
from streams.devtools.localkafka.errors import LocalKafkaError
from streams.devtools.localkafka.layout import Paths
from streams.devtools.localkafka.profiles import secure_profile


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.devtools.localkafka up|down|status|reset``."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.devtools.localkafka",
        description=localkafka.__doc__,
    )
    parser.add_argument("command", choices=["up", "down", "status", "reset"])
    parser.add_argument("--timeout-s", type=float, default=None)
    parser.add_argument("--secure", action="store_true", help="the secure profile")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.secure:
        settings = secure_profile(settings)
    try:
        if args.command == "up":
            print(up(settings, timeout_s=args.timeout_s or 120.0).message)
        elif args.command == "down":
            stopped = down(settings, timeout_s=args.timeout_s or 60.0)
            print("stopped" if stopped else "nothing to stop")
        elif args.command == "reset":
            reset(settings, timeout_s=args.timeout_s or 60.0)
            print(f"stopped and deleted {Paths.of(settings).data}")
        else:
            current = status(settings)
            print(current.message)
            return 0 if current.running else 1
    except LocalKafkaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
