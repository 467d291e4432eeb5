"""M3: the worker's web server answers only its own Host names, and wants its token
when it has one (streams/runtime/web/guard.py), on a real aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.errors import ConfigError
from streams.runtime.web import guard

TOKEN = "s3cret-token-of-32-characters-xx"


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def _app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[guard.middleware(settings)])
    for path in ("/", "/health", "/metrics", "/static/dashboard.js", "/positions/a"):
        app.router.add_get(path, _ok)
    return app


@pytest_asyncio.fixture(loop_scope="function")
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = Settings.from_env({"KESSAI_WEB_TOKEN_FILE": str(token_file)})
    async with TestClient(TestServer(_app(settings))) as c:
        yield c


async def test_a_foreign_host_is_refused(client: TestClient[web.Request, web.Application]) -> None:
    for host in ("evil.example", "evil.example:6066", "127.0.0.1.evil.example"):
        got = await client.get("/health", headers={"Host": host})
        assert got.status == 403, host
        assert "KESSAI_WEB_HOSTS" in await got.text()
    for host in ("localhost:6066", "127.0.0.1", "[::1]:6066", "LOCALHOST"):
        assert (await client.get("/health", headers={"Host": host})).status == 200, host


async def test_data_wants_the_token_and_the_page_does_not(
    client: TestClient[web.Request, web.Application],
) -> None:
    host = {"Host": "localhost"}
    for path in ("/metrics", "/positions/a"):
        refused = await client.get(path, headers=host)
        assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = await client.get(path, headers={**host, "Authorization": "Bearer nope"})
        assert wrong.status == 401
        good = await client.get(path, headers={**host, "Authorization": f"Bearer {TOKEN}"})
        assert good.status == 200
    for path in ("/", "/health", "/static/dashboard.js"):
        assert (await client.get(path, headers=host)).status == 200, path


async def test_without_a_token_file_data_is_open_to_its_hosts() -> None:
    async with TestClient(TestServer(_app(Settings()))) as c:
        assert (await c.get("/metrics", headers={"Host": "127.0.0.1:6066"})).status == 200


def test_extra_hosts_and_a_specific_bind_address_are_answered() -> None:
    env = {"KESSAI_WEB_BIND": "10.0.0.5", "KESSAI_WEB_HOSTS": "kessai-worker, Metrics.Local"}
    hosts = Settings.from_env(env).web_hosts
    assert {"10.0.0.5", "kessai-worker", "metrics.local", "localhost"} <= set(hosts)
    assert "0.0.0.0" not in Settings.from_env({"KESSAI_WEB_BIND": "0.0.0.0"}).web_hosts


def test_a_short_or_missing_token_file_is_a_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(ConfigError, match="16 characters"):
        guard.read_token(short)
    with pytest.raises(ConfigError, match="KESSAI_WEB_TOKEN_FILE"):
        guard.read_token(tmp_path / "missing")
