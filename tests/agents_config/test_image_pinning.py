"""A tenant's image must be pinned: an exact version tag or a digest, never a moving tag."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents_config.spec import TenantSpec

BASE = {"tenant_id": "t1", "app_name": "oc-t1", "plan": "pro", "region": "iad", "desired_rev": 1}
DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/openclaw/openclaw:2026.9.6",
        "ghcr.io/openclaw/openclaw:2026.9.6-slim",
        "ghcr.io/openclaw/openclaw:v1.2.3",
        f"ghcr.io/openclaw/openclaw@{DIGEST}",
        f"ghcr.io/openclaw/openclaw:latest@{DIGEST}",  # a digest pins whatever the tag says
        "registry.example:5000/team/openclaw:2026.10.1",
    ],
)
def test_pinned_images_are_accepted(image: str) -> None:
    assert TenantSpec(**BASE, image=image).image == image


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/openclaw/openclaw",
        "ghcr.io/openclaw/openclaw:latest",
        "ghcr.io/openclaw/openclaw:main",
        "ghcr.io/openclaw/openclaw:stable",
        "ghcr.io/openclaw/openclaw:extended-stable",
        "ghcr.io/openclaw/openclaw:nightly",
        "ghcr.io/openclaw/openclaw:2026",
        "not an image",
    ],
)
def test_moving_or_malformed_images_are_refused_naming_the_field(image: str) -> None:
    with pytest.raises(ValidationError) as info:
        TenantSpec(**BASE, image=image)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("image",)]
    assert "pinned" in errors[0]["msg"] or "not an image" in errors[0]["msg"]
