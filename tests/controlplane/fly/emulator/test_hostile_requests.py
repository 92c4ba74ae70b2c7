"""Hostile and careless requests to the emulator: Fly's 400 (or 401/404/413), never a 500, never a
traceback, never the token or a secret-shaped value in an error answer or a log line; the body is
neither read before authentication nor past its size limit."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from controlplane.fly.emulator import EmulatorOptions, FlyEmulator
from controlplane.logging import configure_logging
from controlplane.redaction import SECRET_PATTERNS
from tests.support.emulator import IMAGE, ORG, machine_body

TOKEN = "emulator-token-" + "Kq7" * 10
KEY = "sk-proj-" + "Zx9" * 16  # a provider key a careless client puts in a bad field
LIMIT = 64 * 1024


def _emulator() -> FlyEmulator:
    return FlyEmulator(
        EmulatorOptions(
            latency="zero",
            seed=3,
            org=ORG,
            token=TOKEN,
            rate_limits=False,
            max_body_bytes=LIMIT,
            clock_speed=10_000.0,  # a long-poll wait ends in milliseconds
        )
    )


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out)
    yield out
    configure_logging(level="INFO", fmt="json")


def _clean(text: str) -> None:
    assert "Traceback" not in text and TOKEN not in text and KEY not in text
    assert [p.pattern for p in SECRET_PATTERNS if p.search(text)] == []


# -- the body is read only after routing and authentication, and never past the limit --------------
class _Body:
    """An ASGI receive() serving an endless body in 64 KiB chunks, counting what was read."""

    def __init__(self) -> None:
        self.chunks = 0

    async def __call__(self) -> dict[str, Any]:
        self.chunks += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}


async def _call(emu: FlyEmulator, path: str, headers: dict[str, str], body: _Body) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    await emu.app(scope, body, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    ("headers", "status", "chunks_read"),
    [
        ({"content-length": str(1 << 30)}, 401, 0),  # no token: refused before reading 1 GB
        ({"content-length": str(1 << 30), "authorization": "Bearer wrong"}, 401, 0),
        ({"content-length": str(1 << 30), "authorization": f"Bearer {TOKEN}"}, 413, 0),  # declared
        ({"content-length": "12abc", "authorization": f"Bearer {TOKEN}"}, 400, 0),
        ({"authorization": f"Bearer {TOKEN}"}, 413, 2),  # streamed: stops just past 64 KiB
    ],
)
def test_auth_and_size_are_checked_before_the_body_is_read(
    headers: dict[str, str], status: int, chunks_read: int
) -> None:
    emu, body = _emulator(), _Body()
    got, answer = asyncio.run(_call(emu, "/v1/apps", headers, body))
    assert got == status and body.chunks == chunks_read
    assert b"Traceback" not in answer and TOKEN.encode() not in answer


def test_unknown_routes_are_answered_without_reading_the_body() -> None:
    emu, body = _emulator(), _Body()
    assert asyncio.run(_call(emu, "/v1/nowhere", {"content-length": str(1 << 30)}, body))[0] == 404
    assert body.chunks == 0


# -- machine configs type-checked with Fly's 400 -------------------------------------------------
BAD_CONFIGS: list[tuple[str, Any]] = [
    ("guest", "big"),
    ("guest", {"cpus": "2"}),
    ("guest", {"memory_mb": 1.5}),
    ("guest", {"cpus": 2**70}),
    ("guest", {"kernel_args": "quiet"}),
    ("restart", []),
    ("restart", "always"),
    ("restart", {"policy": 1}),
    ("restart", {"max_retries": "x"}),
    ("restart", {"policy": KEY}),
    ("stop_config", "10s"),
    ("stop_config", {"timeout": 10}),
    ("stop_config", {"signal": ["SIGTERM"]}),
    ("checks", []),
    ("checks", {"a": 1}),
    ("checks", {"a": {"port": "3000"}}),
    ("checks", {"a": {"interval": 15}}),
    ("checks", {"a": {"headers": {"x": "y"}}}),
    ("services", {}),
    ("services", [1]),
    ("services", [{"ports": "443"}]),
    ("services", [{"internal_port": 3000.5}]),
    ("services", [{"checks": {"a": 1}}]),
    ("services", [{"autostart": "yes"}]),
    ("services", [{"concurrency": {"hard_limit": "many"}}]),
    ("services", [{"internal_port": 70000}]),
    ("services", [{"internal_port": 3000, "ports": [{"port": -1}]}]),
    ("checks", {"a": {"port": 0}}),
    ("mounts", {}),
    ("mounts", ["vol"]),
    ("mounts", [{"size_gb": "1"}]),
    ("mounts", [{"path": 1}]),
    ("env", ["A=1"]),
    ("env", {"A": 1}),
    ("metadata", {"a": None, "b": {"c": 1}}),
    ("files", "x"),
    ("files", [{"mode": "0644"}]),
    ("init", {"cmd": "sh"}),
    ("image", 1),
    ("auto_destroy", "true"),
    ("dns", []),
    ("processes", {}),
]


@pytest.mark.parametrize(("section", "value"), BAD_CONFIGS)
def test_machine_configs_of_the_wrong_type_get_flys_400(section: str, value: Any, logs: io.StringIO) -> None:
    async def go() -> list[httpx.Response]:
        emu = _emulator()
        async with emu.client() as http:
            assert (await http.post("/v1/apps", json={"app_name": "a-1", "org_slug": ORG})).status_code == 201
            body = machine_body()
            body["config"][section] = value
            created = await http.post("/v1/apps/a-1/machines", json=body)
            good = await http.post("/v1/apps/a-1/machines", json=machine_body())
            update = copy.deepcopy(machine_body())
            update["config"][section] = value
            updated = await http.post(f"/v1/apps/a-1/machines/{good.json()['id']}", json=update)
            return [created, updated]

    for answer in asyncio.run(go()):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]  # Fly's message (a value of the wrong type, or an invalid one)
        _clean(answer.text)
    _clean(logs.getvalue())


RAW_BODIES: list[tuple[str, str, bytes]] = [
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": Infinity}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": -Infinity}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": NaN}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": 1e400}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": 99999999999999999999999}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease", b'{"ttl": "30"}'),
    ("POST", "/v1/apps/a-1/machines/{m}/lease?ttl=Infinity", b""),
    ("POST", "/v1/apps/a-1/machines/{m}/lease?ttl=1e999", b""),
    ("POST", "/v1/apps/a-1/volumes", b'{"name":"v","region":"fra","snapshot_retention":"abc"}'),
    ("POST", "/v1/apps/a-1/volumes", b'{"name":"v","region":"fra","snapshot_retention":1e9}'),
    ("POST", "/v1/apps/a-1/volumes", b'{"name":"v","region":"fra","snapshot_retention":1000000}'),
    ("POST", "/v1/apps/a-1/volumes", b'{"name":"v","region":"fra","snapshot_retention":0}'),
    ("POST", "/v1/apps/a-1/volumes", b'{"name":"v","region":"fra","size_gb":"1"}'),
    ("PUT", "/v1/apps/a-1/volumes/vol_x/extend", b'{"size_gb": "2"}'),
    ("POST", "/v1/apps/a-1/machines", b'{"config":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("POST", "/v1/apps/a-1/machines", b'{"config":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"),
    ("POST", "/v1/apps/a-1/machines", b'{"lease_ttl": ' + b"9" * 5000 + b"}"),
    ("POST", "/v1/apps/a-1/machines", b'{"config": {"image": "\xff\xfe"}}'),
    ("POST", "/v1/apps/a-1/machines", b'{"lease_ttl": 86400000, "config": {"image": "x"}}'),
    ("POST", "/v1/apps/a-1/machines", b'{"config": '),
    ("POST", "/v1/apps/a-1/machines", b"[]"),
    ("POST", "/v1/apps/a-1/machines", b'"config"'),
    ("POST", "/v1/apps/a-1/machines", b'{"region": 7, "config": {"image": "x"}}'),
    ("POST", "/v1/apps/a-1/machines/{m}", b'{"config": null}'),
    ("POST", "/v1/apps/a-1/machines/{m}/stop", b'{"timeout": {"seconds": 1}}'),
    ("POST", "/v1/apps/a-1/machines/{m}/exec", b'{"command": "ls", "timeout": "x"}'),
    ("POST", "/v1/apps/a-1/secrets", b'{"values": ["x"]}'),
    ("POST", "/v1/apps", b'{"app_name": ["a"], "org_slug": 1}'),
    ("PUT", "/v1/apps/a-1/machines/{m}/metadata", b'{"metadata": {"a": 1}}'),
    ("POST", "/v1/apps/a-1/machines/{m}/metadata/k", b'{"value": 1}'),
    ("GET", "/v1/apps/a-1/machines/{m}/wait?timeout=99999999999999999999&state=started", b""),
    ("GET", "/v1/apps/a-1/machines/{m}/events?limit=" + "9" * 5000, b""),
    ("GET", "/v1/orgs/" + ORG + "/machines?limit=-1", b""),
    ("GET", "/v1/orgs/" + ORG + "/machines?cursor=%%%", b""),
    ("GET", "/v1/orgs/" + ORG + "/machines?updated_after=yesterday", b""),
    ("GET", "/v1/apps/a-1/secrets?min_version=1e9", b""),
]


@pytest.mark.parametrize(("method", "path", "raw"), RAW_BODIES, ids=lambda v: str(v)[:40])
def test_malformed_bodies_and_numbers_get_a_4xx_never_a_500(
    method: str, path: str, raw: bytes, logs: io.StringIO
) -> None:
    async def go() -> httpx.Response:
        emu = _emulator()
        async with emu.client() as http:
            await http.post("/v1/apps", json={"app_name": "a-1", "org_slug": ORG})
            machine = (await http.post("/v1/apps/a-1/machines", json=machine_body())).json()["id"]
            headers = {"content-type": "application/json"}
            return await http.request(method, path.replace("{m}", machine), content=raw, headers=headers)

    answer = asyncio.run(go())
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    _clean(answer.text)
    _clean(logs.getvalue())


# -- property: any request, never a 500 ----------------------------------------------------------
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.just(KEY),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
CONFIG_FIELDS = sorted(
    {
        "guest",
        "restart",
        "stop_config",
        "checks",
        "services",
        "mounts",
        "env",
        "metadata",
        "files",
        "init",
        "image",
        "size",
        "auto_destroy",
        "dns",
        "processes",
        "statics",
        "schedule",
        "containers",
        "volumes",
    }
)
PATHS = [
    "/v1/apps",
    "/v1/apps/a-1",
    "/v1/apps/a-1/machines",
    "/v1/apps/a-1/machines/{m}",
    "/v1/apps/a-1/machines/{m}/start",
    "/v1/apps/a-1/machines/{m}/stop",
    "/v1/apps/a-1/machines/{m}/suspend",
    "/v1/apps/a-1/machines/{m}/restart",
    "/v1/apps/a-1/machines/{m}/cordon",
    "/v1/apps/a-1/machines/{m}/lease",
    "/v1/apps/a-1/machines/{m}/wait",
    "/v1/apps/a-1/machines/{m}/events",
    "/v1/apps/a-1/machines/{m}/exec",
    "/v1/apps/a-1/machines/{m}/metadata",
    "/v1/apps/a-1/machines/{m}/metadata/k",
    "/v1/apps/a-1/secrets",
    "/v1/apps/a-1/secrets/S",
    "/v1/apps/a-1/volumes",
    "/v1/apps/a-1/volumes/{v}",
    "/v1/apps/a-1/volumes/{v}/extend",
    "/v1/orgs/" + ORG + "/machines",
    "/gateway/a-1/healthz",
]
QUERY_NAMES = ["ttl", "timeout", "state", "limit", "cursor", "force", "min_version", "instance_id", "summary"]


def _pick_leaf(draw: st.DrawFn, value: Any) -> tuple[Any, Any]:
    """(container, key) of a random position inside ``value`` (a dict or list), at any depth."""
    container, key = (
        value,
        draw(st.sampled_from(sorted(value) if isinstance(value, dict) else range(len(value)))),
    )
    while isinstance(container[key], (dict, list)) and container[key] and draw(st.booleans()):
        inner = container[key]
        container = inner
        key = draw(st.sampled_from(sorted(inner) if isinstance(inner, dict) else range(len(inner))))
    return container, key


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], bytes]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    path = draw(st.sampled_from(PATHS))
    params = draw(
        st.dictionaries(st.sampled_from(QUERY_NAMES), st.text(max_size=12) | st.just("Infinity"), max_size=3)
    )
    kind = draw(st.sampled_from(["machine", "leaf", "json", "raw", "none"]))
    if kind == "leaf":  # one value deep inside a valid machine body replaced
        body_value = machine_body()
        container, key = _pick_leaf(draw, body_value)
        container[key] = draw(JSON)
        raw = json.dumps(body_value).encode()
    elif kind == "machine":
        body_value = machine_body()
        body_value["config"]["image"] = IMAGE
        for name in draw(st.lists(st.sampled_from(CONFIG_FIELDS), max_size=3)):
            body_value["config"][name] = draw(JSON)
        for name in draw(
            st.lists(st.sampled_from(["region", "name", "lease_ttl", "skip_launch"]), max_size=2)
        ):
            body_value[name] = draw(JSON)
        raw = json.dumps(body_value).encode()
    elif kind == "json":
        raw = json.dumps(draw(JSON)).encode()
    elif kind == "raw":
        raw = draw(st.binary(max_size=64))
    else:
        raw = b""
    headers = {"content-type": "application/json"}
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["fly-machine-lease-nonce", "host", "x-other"]))] = draw(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)
        )
    return method, path, params, headers, raw


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=4), st.booleans())
def test_any_request_sequence_never_gets_a_500_nor_leaks(
    sequence: list[tuple[str, str, dict[str, str], dict[str, str], bytes]], authed: bool
) -> None:
    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out)
    try:
        answers = asyncio.run(_run_sequence(sequence, authed))
    finally:
        configure_logging(level="INFO", fmt="json")
    for (_, path, *_rest), answer in zip(sequence, answers, strict=True):
        # 502 is Fly's proxy saying a gateway has no machine to serve it, not an API failure
        assert answer.status_code < 500 or (path.startswith("/gateway") and answer.status_code == 502), (
            answer.status_code,
            answer.text,
        )
        assert "Traceback" not in answer.text and TOKEN not in answer.text
        if answer.status_code >= 400:
            _clean(answer.text)
    assert "Traceback" not in out.getvalue() and TOKEN not in out.getvalue() and KEY not in out.getvalue()


async def _run_sequence(
    sequence: list[tuple[str, str, dict[str, str], dict[str, str], bytes]], authed: bool
) -> list[httpx.Response]:
    emu = _emulator()
    answers = []
    async with emu.client() as http:
        await http.post("/v1/apps", json={"app_name": "a-1", "org_slug": ORG})
        machine = (await http.post("/v1/apps/a-1/machines", json=machine_body())).json()["id"]
        volume = (await http.post("/v1/apps/a-1/volumes", json={"name": "v", "region": "fra"})).json()["id"]
        if not authed:
            http.headers.pop("authorization")
        for method, path, params, headers, raw in sequence:
            url = path.replace("{m}", machine).replace("{v}", volume)
            answers.append(await http.request(method, url, params=params, headers=headers, content=raw))
    return answers


NULLS: list[tuple[str, Any]] = [
    ("checks", {"a": None}),
    ("services", [None]),
    ("services", [{"ports": [None], "checks": [None]}]),
    ("mounts", [None]),
    ("files", [None]),
    ("guest", None),
    ("restart", None),
    ("stop_config", None),
    ("metadata", {"a": None}),
    ("env", None),
]


@pytest.mark.parametrize(("section", "value"), NULLS)
def test_nulls_decode_like_go_never_a_500(section: str, value: Any) -> None:
    async def go() -> list[httpx.Response]:
        emu = _emulator()
        async with emu.client() as http:
            await http.post("/v1/apps", json={"app_name": "a-1", "org_slug": ORG})
            body = machine_body()
            body["config"][section] = value
            created = await http.post("/v1/apps/a-1/machines", json=body)
            answers = [created]
            if created.status_code == 200:
                machine = created.json()["id"]
                answers.append(await http.get(f"/v1/apps/a-1/machines/{machine}"))
                answers.append(await http.get("/gateway/a-1/readyz"))
                answers.append(await http.get(f"/v1/orgs/{ORG}/machines"))
            return answers

    for answer in asyncio.run(go()):
        assert answer.status_code < 500 or answer.status_code == 502, (answer.status_code, answer.text)
