"""Who may ask the worker's web server anything: the Host header, and a bearer token.

- **Host.** Only the names in :attr:`~streams.config.Settings.web_hosts` (loopback,
  the bind address, ``KESSAI_WEB_HOSTS``) get an answer; any other gets 403. A web page
  that rebinds its own DNS name to 127.0.0.1 sends its own name: it cannot read the
  worker from a browser on the same host.
- **Token.** With ``KESSAI_WEB_TOKEN_FILE``, every path but the dashboard's own files
  and ``/health`` needs ``Authorization: Bearer <token>`` (Prometheus:
  ``authorization.credentials_file``); the dashboard takes it once from its address,
  ``/#token=...``. Compared in constant time.

faust's own ``/table``, ``/router``, ``/graph`` and stats pages are off
(:func:`streams.runtime.app.create_app`): they showed the order book and every table,
uncommitted, to anyone (docs/security.md, M3).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.config import Settings
from streams.errors import ConfigError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths answered without a token: the dashboard's page and files (no data in them),
#: and the liveness probe.
OPEN_PATHS = frozenset({"/", "/health"})
OPEN_PREFIX = "/static/"


def read_token(path: Path | None) -> bytes | None:
    """The token in ``path`` (surrounding whitespace dropped); None without a file."""
    if path is None:
        return None
    try:
        token = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(f"KESSAI_WEB_TOKEN_FILE {path}: {err.strerror}") from err
    if len(token) < 16:
        raise ConfigError(f"KESSAI_WEB_TOKEN_FILE {path}: want a token of 16 characters or more")
    return token


def web_auth_headers(settings: Settings) -> dict[str, str]:
    """The headers a client of the workers' HTTP API sends: the token, when the
    settings name one (``kessai replay --worker``)."""
    token = read_token(settings.web_token_file)
    return {} if token is None else {"Authorization": f"Bearer {token.decode()}"}


def host_name(host: str | None) -> str:
    """``"127.0.0.1:6066"`` -> ``"127.0.0.1"``, ``"[::1]:6066"`` -> ``"::1"``, lower case."""
    text = (host or "").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def middleware(settings: Settings) -> Middleware:
    """The aiohttp middleware that answers 403 for a foreign Host and 401 without the
    token (when there is one)."""
    hosts = frozenset(h.lower() for h in settings.web_hosts)
    expected = (
        None if (token := read_token(settings.web_token_file)) is None else b"Bearer " + token
    )

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = host_name(request.headers.get("Host"))
        if host not in hosts:
            return web.Response(
                status=403,
                text=f"kessai: this worker does not answer for Host {host[:80]!r} "
                "(KESSAI_WEB_HOSTS lists the names it does)\n",
            )
        path = request.path
        if expected is not None and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIX):
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return web.Response(
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="kessai"'},
                    text="kessai: this worker wants its token (Authorization: Bearer ...)\n",
                )
        return await handler(request)

    return guard
