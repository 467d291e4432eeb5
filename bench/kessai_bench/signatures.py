"""What checking a signature costs per record, in process: ``python -m kessai_bench.signatures``.

Times the trade checks (:func:`streams.settlement.intake.check_record`, what the engine
runs per ``trades`` record) on the same signed trades with the registry and without it,
interleaved in rounds so that a noisy neighbour hits both alike, and the signing a
venue does. The whole pipeline's trades/s with and without the checks is
``kessai bench --variants pipeline-exactly-once,pipeline-exactly-once+signed``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import orjson

from kessai_bench.trades import TradeFactory
from streams.security import signing
from streams.settlement.intake import check_record

#: Rounds of each way, interleaved; the median round is reported.
ROUNDS = 7
TOKENS = {"JPYC": 0, "USDC": 6}


def venue_registry(
    signer: str = "venue-bench", deployment: str = "kessai-bench"
) -> tuple[signing.Registry, signing.SigningKey]:
    """A fresh venue key for the bench's accounts (``acct-*``) and a registry, signed by
    a fresh admin key, that holds it."""
    venue = signing.SigningKey.generate(signer, deployment)
    admin = signing.SigningKey.generate("admin", "-").key
    document = signing.registry_document(
        [signing.entry(venue.signer, "venue", venue.public_text(), ["acct-*"])],
        deployment=venue.deployment,
        admin=admin,
    )
    return signing.registry_of(orjson.loads(document), admin.public_key()), venue


def measure(records: int, rounds: int = ROUNDS) -> dict[str, float]:
    """Microseconds per record: intake unsigned-path, intake checked, and signing."""
    registry, venue = venue_registry()
    now = time.time()
    factory = TradeFactory("T", seed=1, signer=venue)
    batch = [factory.record() for _ in range(records)]
    # The same trades (same seed), unsigned.
    unsigned = TradeFactory("T", seed=1)
    plain = [unsigned.record() for _ in range(records)]

    def intake(items: list[tuple[bytes, bytes]], signers: signing.Registry | None) -> None:
        for key, value in items:
            got = check_record(key, value, signers=signers, arrived_s=now)
            assert not isinstance(got, tuple), got

    def sign() -> None:
        for _ in range(records):
            signing.sign("trades", factory.trade(), venue)

    ways: dict[str, Callable[[], None]] = {
        "intake_us": lambda: intake(plain, None),
        "intake_checked_us": lambda: intake(batch, registry),
        "sign_us": sign,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - started) / records * 1e6)
    result = {name: round(statistics.median(values), 2) for name, values in times.items()}
    result["check_us"] = round(result["intake_checked_us"] - result["intake_us"], 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kessai_bench.signatures",
        description="Microseconds per trade: the intake with and without signature checks, "
        "and signing; the median of interleaved rounds, as one JSON line.",
    )
    parser.add_argument("--records", type=int, default=5_000, help="trades per round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    sys.stdout.write(orjson.dumps(measure(args.records, args.rounds)).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
