"""The secret vault: AES-256-GCM with a key ring, associated data and keyed fingerprints.

Stored form (one string, safe to keep in the database)::

    v1:<key_id>:<base64url(nonce[12] || ciphertext || tag[16])>

* a random 96-bit nonce per encryption (never reused: ``os.urandom``);
* the key id selects the key directly; the first key of the ring is primary (encrypts), the others
  only decrypt (rotation: add a key in front, run ``controlplane keys rotate``, then retire the old);
* the associated data binds the ciphertext to its tenant id and secret name, so a value copied to
  another row or tenant fails to decrypt;
* fingerprints are HMAC-SHA256 under a separate fingerprint key (display and "did it change"),
  never reversible.

Every error is a :class:`VaultError` whose message names the problem and never the plaintext or the
key material. ``repr(vault)`` shows key ids only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controlplane.redaction import VAULT_KEY_ID

if TYPE_CHECKING:
    from controlplane.settings import Settings

FORMAT_VERSION = "v1"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32


class VaultError(Exception):
    """Base class: a value could not be encrypted or decrypted."""


class UnknownKeyId(VaultError):
    """The stored value names a key id that is not in the key ring."""


class MalformedCiphertext(VaultError):
    """The stored value is not in the vault's format."""


class DecryptionFailed(VaultError):
    """Authentication failed: the value was tampered with, or belongs to another tenant or name."""


def associated_data(tenant_id: str, name: str) -> bytes:
    """The AEAD associated data binding a ciphertext to its tenant and secret name."""
    if not tenant_id or not name:
        raise VaultError("tenant_id and name are required to bind a secret")
    # Length-prefixed so that no (tenant, name) pair can collide with another.
    t, n = tenant_id.encode(), name.encode()
    return b"cp-secret|" + FORMAT_VERSION.encode() + b"|" + _lp(t) + _lp(n)


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


class Vault:
    """Encrypts and decrypts secrets with the key ring (first key primary)."""

    __slots__ = ("_keys", "_aead", "_fp_key", "primary_key_id")

    def __init__(self, keys: list[tuple[str, bytes]], fingerprint_key: bytes | None = None) -> None:
        if not keys:
            raise VaultError("the key ring is empty")
        self._keys: dict[str, bytes] = {}
        for key_id, material in keys:
            if not valid_key_id(key_id):
                raise VaultError("key ids must be 1-32 ASCII letters, digits, '-' or '_'")
            if len(material) != KEY_BYTES:
                raise VaultError(f"key {key_id!r} must be {KEY_BYTES} bytes for AES-256")
            if key_id in self._keys:
                raise VaultError(f"key id {key_id!r} appears twice in the key ring")
            self._keys[key_id] = material
        self._aead = {kid: AESGCM(material) for kid, material in self._keys.items()}
        self.primary_key_id: str = keys[0][0]
        if fingerprint_key is None:
            fingerprint_key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"cp-vault-fingerprint-v1"
            ).derive(self._keys[self.primary_key_id])
        self._fp_key = fingerprint_key

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        fp = settings.vault_fingerprint_key
        return cls(
            settings.key_ring(),
            base64.b64decode(fp.get_secret_value()) if fp is not None else None,
        )

    def __repr__(self) -> str:
        return f"<Vault primary={self.primary_key_id!r} keys={list(self._keys)!r}>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:  # never pickle key material by accident
        raise TypeError("Vault objects cannot be pickled")

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    # -- encryption ------------------------------------------------------------------------
    def encrypt(self, plaintext: str, *, tenant_id: str, name: str) -> str:
        """Encrypt under the primary key; the result is bound to ``tenant_id`` and ``name``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.primary_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), associated_data(tenant_id, name)
        )
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{FORMAT_VERSION}:{self.primary_key_id}:{blob}"

    def decrypt(self, stored: str, *, tenant_id: str, name: str) -> str:
        """Decrypt a stored value; raises a :class:`VaultError` subclass on any problem."""
        key_id, raw = self._parse(stored)
        aead = self._aead.get(key_id)
        if aead is None:
            raise UnknownKeyId(
                f"secret {name!r} is encrypted with key id {key_id!r}, which is not in the key "
                f"ring (known: {', '.join(self._keys)})"
            )
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            plaintext = aead.decrypt(nonce, sealed, associated_data(tenant_id, name))
        except InvalidTag:
            raise DecryptionFailed(
                f"secret {name!r} failed authentication: it was tampered with, or it belongs to "
                "another tenant or secret name"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # authenticated but not text: our own writes are always text
            raise DecryptionFailed(f"secret {name!r} is not UTF-8 text") from None

    def reencrypt(self, stored: str, *, tenant_id: str, name: str) -> str:
        """The same secret under the primary key (a no-op result if it is already there)."""
        return self.encrypt(
            self.decrypt(stored, tenant_id=tenant_id, name=name), tenant_id=tenant_id, name=name
        )

    @staticmethod
    def key_id_of(stored: str) -> str:
        """The key id a stored value was encrypted with (no decryption)."""
        return Vault._parse(stored)[0]

    @staticmethod
    def _parse(stored: str) -> tuple[str, bytes]:
        parts = stored.split(":", 2) if isinstance(stored, str) else []
        if len(parts) != 3:
            raise MalformedCiphertext("stored secret is not in the form 'v1:<key id>:<data>'")
        version, key_id, blob = parts
        if version != FORMAT_VERSION:
            raise MalformedCiphertext(f"unsupported secret format version {version!r}")
        if not _B64URL.fullmatch(blob):
            raise MalformedCiphertext("stored secret data is not valid unpadded base64url")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except (binascii.Error, ValueError):
            raise MalformedCiphertext("stored secret data is not valid base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise MalformedCiphertext("stored secret data is too short to hold a nonce and a tag")
        return key_id, raw

    # -- display metadata ------------------------------------------------------------------
    def fingerprint(self, plaintext: str) -> str:
        """A keyed, irreversible fingerprint (64 hex chars) to tell keys apart without showing them."""
        return hmac.new(self._fp_key, plaintext.encode("utf-8"), hashlib.sha256).hexdigest()

    @staticmethod
    def last4(plaintext: str) -> str:
        """The last four characters, for display ("…WXYZ"); shorter secrets show nothing."""
        return plaintext[-4:] if len(plaintext) >= 12 else ""


_KEY_ID = re.compile(VAULT_KEY_ID)


def valid_key_id(key_id: str) -> bool:
    """Whether ``key_id`` is in the one key-id alphabet (:data:`controlplane.redaction.VAULT_KEY_ID`)."""
    return _KEY_ID.fullmatch(key_id) is not None


def generate_key() -> bytes:
    """A fresh random AES-256 key."""
    return AESGCM.generate_key(bit_length=256)


def format_key_ring_entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


__all__ = [
    "valid_key_id",
    "DecryptionFailed",
    "MalformedCiphertext",
    "UnknownKeyId",
    "Vault",
    "VaultError",
    "associated_data",
    "format_key_ring_entry",
    "generate_key",
]
