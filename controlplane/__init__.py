"""The fleet provisioning control plane (settings, database, vault, Fly, BYOK, CLI)."""

from controlplane.logging import configure_safe_default

configure_safe_default()  # no unredacted log output, even before the process configures logging
