"""The one URL redactor (controlplane/url_redaction.py): userinfo, every query value and the fragment
masked, for database, Fly and provider URLs alike, and inside free text (redact_text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.db.urls import redact_database_url
from controlplane.redaction import redact_text
from controlplane.url_redaction import redact_url, redact_urls_in_text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://u:pw@127.0.0.1:5432/x?password=hunter2&sslmode=require#frag",
            "postgresql://***@127.0.0.1:5432/x?password=***&sslmode=***#***",
        ),
        ("https://tok@api.machines.dev/v1?key=abc", "https://***@api.machines.dev/v1?key=***"),
        ("https://api.machines.dev", "https://api.machines.dev"),
        ("sqlite+aiosqlite:////tmp/a.db", "sqlite+aiosqlite:////tmp/a.db"),
        ("libsql://db.turso.io?authToken=eyJabc", "libsql://db.turso.io?authToken=***"),
        ("postgresql://u:pa/ss@h/db", "postgresql://***@h/db"),  # a careless password holding "/"
        ("http://h/p?bare-token-value", "http://h/p?***"),
        ("http://h/p?Bad Name!=1&ok=2", "http://h/p?***=***&ok=***"),
        ("http://h/p#only-a-fragment", "http://h/p#***"),
    ],
)
def test_what_is_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_database_urls_use_it() -> None:
    url = "postgresql+asyncpg://user:pw@db:5432/app?password=x&ssl=require"
    assert redact_database_url(url) == "postgresql+asyncpg://***@db:5432/app?password=***&ssl=***"


def test_urls_inside_text_and_log_lines() -> None:
    text = "GET 'https://u:p@x.example/v1?key=abc' failed: see http://h/a#f, then retry."
    assert (
        redact_urls_in_text(text)
        == "GET 'https://***@x.example/v1?key=***' failed: see http://h/a#***, then retry."
    )
    assert redact_text("error: postgresql://a:b@h/db?password=c: connection refused") == (
        "error: postgresql://***@h/db?password=***: connection refused"
    )


_secret = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@#?&=/ \\"),
    min_size=8,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "postgresql+asyncpg", "https", "http", "libsql", "sqlite"]),
    user=_secret,
    password=_secret,
    value=_secret,
    fragment=_secret,
    name=st.sampled_from(["password", "key", "authToken", "api-key", "sslmode"]),
)
def test_no_credential_survives(
    scheme: str, user: str, password: str, value: str, fragment: str, name: str
) -> None:
    url = f"{scheme}://{user}:{password}@host.example:5432/db?{name}={value}#{fragment}"
    shown = redact_url(url)
    for secret in (user, password, value, fragment):
        assert secret not in shown.replace("host.example", "").replace(scheme, "").replace(name, "")
    assert redact_url(redact_url(url)) == redact_url(url)  # stable: masking twice changes nothing


_url_safe = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%+", min_size=8, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(
    user=_url_safe,
    password=_url_safe,
    value=_url_safe,
    fragment=_url_safe,
    end=st.sampled_from(["", ".", ")", ":", ","]),
)
def test_no_credential_survives_in_text(
    user: str, password: str, value: str, fragment: str, end: str
) -> None:
    url = f"https://{user}:{password}@host.example/v1?key={value}#{fragment}"
    shown = redact_urls_in_text(f"request to ({url}{end} failed")
    for secret in (user, password, value, fragment):
        assert secret not in shown.replace("host.example", "")


def test_the_fly_client_repr_masks_its_url() -> None:
    from controlplane.fly import FlyClient

    client = FlyClient(token="fm2_" + "a" * 40, base_url="https://user:pw@fly.example/?key=abcdef")
    assert "https://***@fly.example/?key=***" in repr(client) and "abcdef" not in repr(client)
