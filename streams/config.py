"""Settings, read once from the environment.

Every knob kessai has is here, with its unit in its name and its default beside it,
so that a reader finds them in one place (TigerBeetle: "put a limit on everything").
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from streams.errors import ConfigError
from streams.money import LEDGER_DECIMALS_MAX
from streams.settlement.fails import PenaltyRules
from streams.settlement.fx import FxRules

#: Where state goes unless KESSAI_STATE_DIR says otherwise: ``.kessai`` under the
#: working directory (never inside the installed package).
STATE_DIR_NAME = ".kessai"

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_PARTITIONS = 4
#: The settlement engine's processing guarantees; kessai runs exactly_once unless
#: benchmarking.
GUARANTEES = ("exactly_once", "at_least_once")
#: Token -> number of decimals of its smallest unit in the ledger.
DEFAULT_TOKENS: dict[str, int] = {"JPYC": 0, "USDC": 6}
#: Token -> its decimals on-chain (JPYC v2: 18; native USDC: 6). A deposit finer than
#: the ledger's unit credits the whole units; the rest is the bridge's dust.
DEFAULT_ONCHAIN: dict[str, int] = {"JPYC": 18, "USDC": 6}
#: How kessai's clients reach Kafka: the open dev profile, or SASL/SCRAM-SHA-512 over
#: TLS (the secure profile, ``kessai kafka up --secure``; docs/security.md).
KAFKA_SECURITY = ("plaintext", "sasl_ssl")


#: Longest settlement deadline: 30 days.
DEADLINE_S_MAX = 30 * 86_400
#: The engine's window unless told (docs/adr/0033): seven days.
TRADE_WINDOW_S = 7 * 86_400.0
#: The longest window for finished trade ids: ten years.
WINDOW_S_MAX = 3650 * 86_400
#: Threads that check signatures ahead of each engine batch, unless told: the cores, up to 4.
SIGNATURE_THREADS = min(4, os.cpu_count() or 1)


def _parse_tokens(text: str) -> tuple[dict[str, int], dict[str, int]]:
    """``"JPYC:0:18,USDC:6"`` -> the ledger's decimals ``{"JPYC": 0, "USDC": 6}`` and
    the on-chain ones ``{"JPYC": 18, "USDC": 6}`` (on-chain unsaid: the ledger's)."""
    tokens: dict[str, int] = {}
    onchain: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition(":")
        ledger, _, chain = rest.partition(":")
        chain = chain or ledger
        if not (name and ledger.isdigit() and chain.isdigit()) or not (
            int(ledger) <= LEDGER_DECIMALS_MAX and int(ledger) <= int(chain) <= 18
        ):
            raise ConfigError(
                f"KESSAI_TOKENS: bad entry {item!r}, want NAME:LEDGER[:ONCHAIN] decimals: "
                f"the ledger's 0..{LEDGER_DECIMALS_MAX} (a trade's cash must fit 64 bits), "
                f"on-chain from the ledger's to 18 (JPYC:0:18)"
            )
        tokens[name.strip().upper()] = int(ledger)
        onchain[name.strip().upper()] = int(chain)
    if not tokens:
        raise ConfigError("KESSAI_TOKENS: no token given")
    return tokens, onchain


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    text = env.get(name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {text!r}, want 1/0, true/false, yes/no or on/off")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    text = env.get(name)
    return Path(text) if text else None


def _credentials(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Kafka user name and password: from ``KESSAI_KAFKA_CREDENTIALS_FILE`` (a JSON
    object ``{"username": ..., "password": ...}``), else from ``KESSAI_KAFKA_USERNAME``
    and ``KESSAI_KAFKA_PASSWORD``. Never from a command line, where ``ps`` shows it."""
    path = _path(env, "KESSAI_KAFKA_CREDENTIALS_FILE")
    if path is None:
        return env.get("KESSAI_KAFKA_USERNAME"), env.get("KESSAI_KAFKA_PASSWORD")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"KESSAI_KAFKA_CREDENTIALS_FILE {path}: {err}") from err
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("username"), str)
        or not isinstance(document.get("password"), str)
    ):
        raise ConfigError(
            f"KESSAI_KAFKA_CREDENTIALS_FILE {path}: want a JSON object with string "
            f'"username" and "password"'
        )
    return document["username"], document["password"]


def _number(
    env: Mapping[str, str], name: str, default: str, *, minimum: float, maximum: float
) -> float:
    """The finite number *name* in [minimum, maximum]: ``inf``, ``nan``, a negative or
    zero interval is a mistake to name at start, not a crash at the first tick."""
    text = env.get(name, default)
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a number") from None
    if not minimum <= value <= maximum:  # False for nan
        raise ConfigError(f"{name}: {text!r}, want a number from {minimum:g} to {maximum:g}")
    return value


def _integer(env: Mapping[str, str], name: str, default: str, *, minimum: int, maximum: int) -> int:
    text = env.get(name, default)
    if not text.strip().isdigit() or not minimum <= int(text) <= maximum:
        raise ConfigError(f"{name}: {text!r}, want a whole number from {minimum} to {maximum}")
    return int(text)


def _cutoff(env: Mapping[str, str], lag: int) -> float:
    """``KESSAI_CUTOFF``, ``HH:MM`` JST, as seconds after midnight: by default 14:00
    under T+1 and later (BOJ-NET's afternoon), 24:00 (the day's end) at T+0."""
    text = env.get("KESSAI_CUTOFF") or ("14:00" if lag > 0 else "24:00")
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ConfigError(f"KESSAI_CUTOFF: {text!r}, want a time of day in Japan, HH:MM")
    seconds = int(hours) * 3600 + int(minutes) * 60
    if not 0 < seconds <= 86_400 or int(minutes) >= 60:
        raise ConfigError(f"KESSAI_CUTOFF: {text!r}, want a time from 00:01 to 24:00")
    return float(seconds)


def _rate(env: Mapping[str, str], name: str, default: str) -> Decimal:
    """A rate as a decimal fraction (0.0075 = 0.75 %), from 0 to 1."""
    text = env.get(name) or default
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{name}: {text!r} is not a decimal number") from None
    if not value.is_finite() or not 0 <= value <= 1:
        raise ConfigError(f"{name}: {text!r}, want a fraction from 0 to 1 (0.0075 = 0.75 %)")
    return value


def _penalty_rules(env: Mapping[str, str]) -> PenaltyRules | None:
    """``KESSAI_PENALTY_POLICY`` (``csdr``, ``jsda`` or ``none``) and its rates."""
    policy = _choice(env, "KESSAI_PENALTY_POLICY", ("csdr", "jsda", "none"))
    if policy == "none":
        return None
    return PenaltyRules(
        "csdr" if policy == "csdr" else "jsda",
        securities_rate=_rate(env, "KESSAI_PENALTY_SECURITIES_RATE", "0.00001"),
        cash_rate=_rate(env, "KESSAI_PENALTY_CASH_RATE", "0.0075"),
        reference_rate=_rate(env, "KESSAI_PENALTY_REFERENCE_RATE", "0.005"),
    )


def _replication(env: Mapping[str, str]) -> int | None:
    """``KESSAI_REPLICATION_FACTOR``: unset (or empty), the cluster's default."""
    if not env.get("KESSAI_REPLICATION_FACTOR", "").strip():
        return None
    return _integer(env, "KESSAI_REPLICATION_FACTOR", "", minimum=1, maximum=7)


def _window(env: Mapping[str, str], deadline_s: float) -> float | None:
    """``KESSAI_TRADE_WINDOW_S``: seven days unless set; 0 keeps every id; else longer
    than the deadline (a trade must finish before its id may leave)."""
    text = env.get("KESSAI_TRADE_WINDOW_S", "").strip() or f"{TRADE_WINDOW_S:g}"
    if text == "0":
        return None
    name = "KESSAI_TRADE_WINDOW_S"
    window = _number({name: text}, name, text, minimum=1, maximum=WINDOW_S_MAX)
    if window <= deadline_s:
        raise ConfigError(
            f"KESSAI_TRADE_WINDOW_S: {window:g} s, want more than the settlement deadline "
            f"({deadline_s:g} s, KESSAI_SETTLEMENT_DEADLINE_S): a trade must finish before "
            "its id may leave the engine's memory"
        )
    return window


def _hosts(env: Mapping[str, str], bind: str) -> tuple[str, ...]:
    """The Host header values the web server answers (DNS rebinding): loopback names,
    the bind address when it is a specific one, and ``KESSAI_WEB_HOSTS``."""
    extra = [h.strip().lower() for h in env.get("KESSAI_WEB_HOSTS", "").split(",") if h.strip()]
    specific = [] if bind in ("0.0.0.0", "::", "") else [bind]
    return tuple(dict.fromkeys(["localhost", "127.0.0.1", "::1", *specific, *extra]))


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The value of *name*, one of *choices* (the first is the default)."""
    text = env.get(name, choices[0])
    if text not in choices:
        raise ConfigError(f"{name}: {text!r}, want one of {', '.join(choices)}")
    return text


@dataclass(frozen=True, kw_only=True)
class Settings:
    """kessai's settings. Build with :meth:`from_env`; tests build them directly."""

    #: Kafka bootstrap servers, ``host:port[,host:port]``.
    bootstrap: str = DEFAULT_BOOTSTRAP
    #: Partition count shared by every co-partitioned public topic.
    partitions: int = DEFAULT_PARTITIONS
    #: Replicas of each topic kessai creates (None: the cluster's
    #: ``default.replication.factor``); from 3 on, two must be in sync for a write.
    replication_factor: int | None = None
    #: Cash tokens accepted on ``payments``/``trades`` and their decimals in the ledger.
    tokens: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TOKENS))
    #: Their decimals on-chain (``KESSAI_TOKENS=JPYC:0:18``): a deposit may be that
    #: fine; what is below the ledger's unit goes to ``bridge-dust:{token}``.
    onchain: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ONCHAIN))
    #: Where the local broker keeps its jars, data and logs (git-ignored).
    state_dir: Path = field(default_factory=lambda: Path.cwd() / STATE_DIR_NAME)
    #: Faust application id: consumer group and transactional-id prefix.
    app_id: str = "kessai"
    #: ``exactly_once`` (the product) or ``at_least_once`` (benchmarks only: a crash may
    #: then repeat ledger moves and settlement records).
    processing_guarantee: str = "exactly_once"
    #: ``asyncio`` or ``uvloop`` (needs the ``uvloop`` package).
    event_loop: str = "asyncio"
    #: Port of the worker's web server (dashboard, metrics, health, queries).
    web_port: int = 6066
    #: Address it listens on: loopback, unless a container must be scraped from outside.
    web_bind: str = "127.0.0.1"
    #: Host header values it answers; any other gets 403 (a DNS-rebinding page cannot
    #: read it). Loopback names and the bind address, plus ``KESSAI_WEB_HOSTS``.
    web_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    #: A file holding the bearer token that ``/metrics`` and the queries require
    #: (``Authorization: Bearer ...``); None: no token. The secure profile makes one.
    web_token_file: Path | None = None
    #: A trade still locking this long after its trade_time (bounded by its arrival) fails.
    settlement_deadline_s: float = 3600.0
    #: The settlement engine's window (docs/adr/0033): a finished trade's id and row
    #: leave its memory (for the archive) once its trade time is this much older than
    #: the engine's clock, and a trade that old is refused, ``stale_trade``. Longer than
    #: the deadline. None (``KESSAI_TRADE_WINDOW_S=0``): every id kept in memory for ever.
    trade_window_s: float | None = TRADE_WINDOW_S
    #: A trade without a settlement date settles this many Japanese business days after
    #: its trade date: 0 for a 24/7 token market (the trade date itself), 1 for the
    #: BOJ-NET convention (T+1; a settlement date must then be a business day).
    settlement_lag: int = 0
    #: ``required``: trades and custody movements of bonds not in the security master
    #: (topic ``instruments``) are refused, ``unknown_isin``. ``off``: any ISIN with a
    #: good check digit settles, with the venue's accrued interest (old tests only).
    security_master: str = "required"
    #: ``wall`` (production) or ``ticks``: a simulated market whose clock the topic
    #: ``clock`` moves forward (tests and the demo reach a record time or a maturity
    #: without waiting for it). Never in production: anyone who may write ``clock``
    #: would decide when trades fail and coupons are paid.
    clock: str = "wall"
    #: The account that pays coupons and redemptions, in JPYC (docs/bonds.md).
    paying_agent: str = "paying-agent"
    #: ``recycle`` (market practice): past its settlement date's cut-off a trade still
    #: locking is ``failing`` and goes on recycling, one fail day per cut-off, until it
    #: settles or ``max_fail_days`` cancel it. ``atomic`` (an all-or-nothing 24/7
    #: token market): it ``failed`` at ``settlement_deadline_s``.
    fail_mode: str = "recycle"
    #: The cut-off, seconds after 00:00 JST of each fail day (``KESSAI_CUTOFF``, HH:MM).
    cutoff_s: float = 86_400.0
    #: Fail days before a failing trade is cancelled (T2S: 60 business days).
    max_fail_days: int = 60
    #: A trade stamped more than this ahead of its arrival is refused,
    #: ``invalid_trade_time``.
    trade_ahead_s: float = 300.0
    #: What each fail day costs the failing party (``KESSAI_PENALTY_POLICY`` and its
    #: rates; None: ``none``, nothing charged). Recycle mode only.
    penalties: PenaltyRules | None = field(default_factory=lambda: PenaltyRules("csdr"))
    #: A trade paid in a token other than JPYC: how old its FX rate may be and how far
    #: from the ``fx-rates`` reference (``KESSAI_FX_MAX_AGE_S``, ``KESSAI_FX_BAND``).
    fx: FxRules = field(default_factory=FxRules)
    #: The settlement engine's producers share one transactional id per app, so a new
    #: holder fences the old one. Off (``KESSAI_ENGINE_FENCING=0``) only in the test
    #: that shows what fencing prevents (tests/crash/test_engine_takeover.py).
    engine_fencing: bool = True
    #: ``GET /health`` answers 503 when an input partition lags more records than this.
    health_lag_max: int = 10_000
    #: ``plaintext`` (dev: anyone who reaches the port may do anything) or ``sasl_ssl``.
    kafka_security: str = "plaintext"
    #: SASL/SCRAM-SHA-512 user and password (``sasl_ssl`` only).
    kafka_username: str | None = None
    kafka_password: str | None = field(default=None, repr=False)
    #: The CA that signed the broker's certificate (``sasl_ssl``); None: the system's.
    kafka_ca_file: Path | None = None
    #: Check the Ed25519 signature on every trade, order, payment and custody record
    #: (on by default under ``sasl_ssl``; ``KESSAI_VERIFY_SIGNATURES`` sets it alone).
    verify_signatures: bool = False
    #: Threads that check signatures ahead of each batch of the settlement engine
    #: (streams/engine/signatures.py): the machine's cores, at most 4; 0 checks each
    #: on the event loop's thread as the batch applies it.
    signature_threads: int = SIGNATURE_THREADS
    #: The signer registry: each venue's and bridge's public key, and the accounts a
    #: venue serves (streams/security/signing.py). Needed when signatures are checked.
    signers_file: Path | None = None
    #: The public half of the operators' admin key (43 characters of base64url): a
    #: signer registry counts only if this key signed it. Needed when signatures are checked.
    registry_key: str | None = None
    #: ``kessai signers`` signs the registry with this Ed25519 private key (PEM).
    registry_admin_key_file: Path | None = None
    #: This deployment's id, inside every signed record's bytes: a record signed for
    #: another deployment (a test cluster, another market) never verifies here.
    deployment: str | None = None
    #: Records a second a venue may send to ``trades`` and to ``orders`` (whatever the
    #: partitions), and its largest burst (streams/security/quota.py); past that,
    #: ``rate_limited``.
    venue_rate_per_s: int = 1_000
    venue_burst: int = 10_000
    #: ``kessai publish`` signs with this Ed25519 private key (PEM) as ``signer_id``.
    signing_key_file: Path | None = None
    signer_id: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        state_dir = Path(e.get("KESSAI_STATE_DIR") or Path.cwd() / STATE_DIR_NAME).absolute()
        tokens, onchain = (
            _parse_tokens(e["KESSAI_TOKENS"])
            if "KESSAI_TOKENS" in e
            else (dict(DEFAULT_TOKENS), dict(DEFAULT_ONCHAIN))
        )
        guarantee = _choice(e, "KESSAI_PROCESSING_GUARANTEE", GUARANTEES)
        security = _choice(e, "KESSAI_KAFKA_SECURITY", KAFKA_SECURITY)
        username, password = _credentials(e)
        deadline_s = _number(
            e, "KESSAI_SETTLEMENT_DEADLINE_S", "3600", minimum=1, maximum=DEADLINE_S_MAX
        )
        window_s = _window(e, deadline_s)
        bind = e.get("KESSAI_WEB_BIND", "127.0.0.1")
        return cls(
            bootstrap=e.get("KESSAI_BOOTSTRAP", DEFAULT_BOOTSTRAP),
            partitions=_integer(
                e, "KESSAI_PARTITIONS", str(DEFAULT_PARTITIONS), minimum=1, maximum=1_000
            ),
            replication_factor=_replication(e),
            tokens=tokens,
            onchain=onchain,
            state_dir=state_dir,
            app_id=e.get("KESSAI_APP_ID", "kessai"),
            processing_guarantee=guarantee,
            event_loop=_choice(e, "KESSAI_EVENT_LOOP", ("asyncio", "uvloop")),
            web_port=_integer(e, "KESSAI_WEB_PORT", "6066", minimum=0, maximum=65_535),
            web_bind=bind,
            web_hosts=_hosts(e, bind),
            web_token_file=_path(e, "KESSAI_WEB_TOKEN_FILE"),
            engine_fencing=e.get("KESSAI_ENGINE_FENCING", "1") != "0",
            settlement_deadline_s=deadline_s,
            trade_window_s=window_s,
            settlement_lag=(lag := _integer(e, "KESSAI_SETTLEMENT_LAG", "0", minimum=0, maximum=5)),
            fail_mode=_choice(e, "KESSAI_FAIL_MODE", ("recycle", "atomic")),
            cutoff_s=_cutoff(e, lag),
            max_fail_days=_integer(e, "KESSAI_MAX_FAIL_DAYS", "60", minimum=1, maximum=250),
            trade_ahead_s=_number(e, "KESSAI_TRADE_AHEAD_S", "300", minimum=0, maximum=86_400),
            penalties=_penalty_rules(e),
            fx=FxRules(
                _number(e, "KESSAI_FX_MAX_AGE_S", "60", minimum=1, maximum=86_400),
                _rate(e, "KESSAI_FX_BAND", "0.005"),
            ),
            security_master=_choice(e, "KESSAI_SECURITY_MASTER", ("required", "off")),
            clock=_choice(e, "KESSAI_CLOCK", ("wall", "ticks")),
            paying_agent=e.get("KESSAI_PAYING_AGENT", "paying-agent"),
            health_lag_max=_integer(e, "KESSAI_HEALTH_LAG_MAX", "10000", minimum=0, maximum=2**62),
            kafka_security=security,
            kafka_username=username,
            kafka_password=password,
            kafka_ca_file=_path(e, "KESSAI_KAFKA_CA_FILE"),
            verify_signatures=_flag(e, "KESSAI_VERIFY_SIGNATURES", default=security == "sasl_ssl"),
            signers_file=_path(e, "KESSAI_SIGNERS_FILE"),
            signature_threads=_integer(
                e, "KESSAI_SIGNATURE_THREADS", str(SIGNATURE_THREADS), minimum=0, maximum=64
            ),
            venue_rate_per_s=_integer(
                e, "KESSAI_VENUE_RATE", "1000", minimum=1, maximum=1_000_000_000
            ),
            venue_burst=_integer(
                e, "KESSAI_VENUE_BURST", "10000", minimum=1, maximum=1_000_000_000
            ),
            registry_key=e.get("KESSAI_REGISTRY_KEY") or None,
            registry_admin_key_file=_path(e, "KESSAI_REGISTRY_ADMIN_KEY_FILE"),
            deployment=e.get("KESSAI_DEPLOYMENT") or None,
            signing_key_file=_path(e, "KESSAI_SIGNING_KEY_FILE"),
            signer_id=e.get("KESSAI_SIGNER_ID"),
        )
