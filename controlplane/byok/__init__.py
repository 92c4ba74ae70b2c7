"""Bring your own key: provider key formats, validation, one verdict vocabulary, key management.

Import the service and validator from here; the modules are listed in ARCHITECTURE.md.
"""

from controlplane.byok.catalog import CATALOG, ProviderSpec, get_spec
from controlplane.byok.errors import (
    ByokError,
    InvalidModelPreference,
    KeyFormatRefused,
    KeyNotFound,
    KeyRefused,
    TenantNotFound,
    UnknownProvider,
)
from controlplane.byok.formats import FormatCheck, check_format
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.validate import KeyValidator
from controlplane.byok.verdicts import Verdict

__all__ = [
    "CATALOG",
    "ByokError",
    "FormatCheck",
    "InvalidModelPreference",
    "KeyFormatRefused",
    "KeyNotFound",
    "KeyRefused",
    "KeyValidator",
    "ProviderKeyValue",
    "ProviderSpec",
    "TenantNotFound",
    "UnknownProvider",
    "Verdict",
    "check_format",
    "get_spec",
]
