"""The vault: AES-256-GCM round trips, key ring, associated data, tampering, fingerprints."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.vault import (
    DecryptionFailed,
    MalformedCiphertext,
    UnknownKeyId,
    Vault,
    VaultError,
    generate_key,
)

RING = [("k2", bytes([2]) * 32), ("k1", bytes([1]) * 32)]


def _flip(stored: str, index: int) -> str:
    """Flip one bit of the decoded blob at ``index`` (negative = from the end) and re-encode."""
    version, kid, blob = stored.split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw[index] ^= 0x01
    return f"{version}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"


def test_round_trip_and_format() -> None:
    vault = Vault(RING)
    stored = vault.encrypt("hunter2-provider-key", tenant_id="t1", name="provider:openai")
    assert stored.startswith("v1:k2:")
    assert "hunter2" not in stored
    assert vault.decrypt(stored, tenant_id="t1", name="provider:openai") == "hunter2-provider-key"
    assert Vault.key_id_of(stored) == "k2"


def test_random_nonce_each_time() -> None:
    vault = Vault(RING)
    a = vault.encrypt("same", tenant_id="t", name="n")
    b = vault.encrypt("same", tenant_id="t", name="n")
    assert a != b
    nonce_a = base64.urlsafe_b64decode(a.split(":")[2] + "==")[:12]
    nonce_b = base64.urlsafe_b64decode(b.split(":")[2] + "==")[:12]
    assert nonce_a != nonce_b


def test_older_keys_decrypt_primary_encrypts() -> None:
    old = Vault([("k1", bytes([1]) * 32)])
    stored = old.encrypt("secret-value", tenant_id="t", name="n")
    rotated = Vault(RING)  # k2 primary, k1 decrypt-only
    assert rotated.decrypt(stored, tenant_id="t", name="n") == "secret-value"
    again = rotated.reencrypt(stored, tenant_id="t", name="n")
    assert Vault.key_id_of(again) == "k2"


def test_unknown_key_id_is_refused_clearly() -> None:
    stored = Vault([("k9", bytes([9]) * 32)]).encrypt("x" * 20, tenant_id="t", name="n")
    with pytest.raises(UnknownKeyId, match=r"key id 'k9'.*not in the key ring"):
        Vault(RING).decrypt(stored, tenant_id="t", name="n")


@pytest.mark.parametrize(
    ("what", "index"), [("nonce", 0), ("nonce", 11), ("ciphertext", 12), ("tag", -1), ("tag", -16)]
)
def test_tampering_is_detected(what: str, index: int) -> None:
    vault = Vault(RING)
    stored = vault.encrypt("a-long-enough-secret", tenant_id="t", name="n")
    with pytest.raises(DecryptionFailed, match="tampered"):
        vault.decrypt(_flip(stored, index), tenant_id="t", name="n")


def test_key_id_swap_is_detected() -> None:
    vault = Vault(RING)
    stored = vault.encrypt("a-long-enough-secret", tenant_id="t", name="n")
    swapped = stored.replace("v1:k2:", "v1:k1:")
    with pytest.raises(DecryptionFailed):
        vault.decrypt(swapped, tenant_id="t", name="n")


@pytest.mark.parametrize(
    ("tenant", "name"), [("t2", "provider:openai"), ("t1", "provider:anthropic"), ("t2", "x")]
)
def test_ciphertext_moved_to_other_tenant_or_name_fails(tenant: str, name: str) -> None:
    vault = Vault(RING)
    stored = vault.encrypt("moved-secret-value", tenant_id="t1", name="provider:openai")
    with pytest.raises(DecryptionFailed, match="another tenant or secret name"):
        vault.decrypt(stored, tenant_id=tenant, name=name)


def test_associated_data_has_no_ambiguous_concatenation() -> None:
    vault = Vault(RING)
    stored = vault.encrypt("value-value-value", tenant_id="ab", name="c")
    with pytest.raises(DecryptionFailed):
        vault.decrypt(stored, tenant_id="a", name="bc")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "v1:k2",
        "v2:k2:AAAA",
        "v1:k2:!!!notbase64!!!",
        "v1:k2:" + "A" * 10,
        "v1:k2:" + "A" * 40 + " " + "A" * 10,
        "v1:k2:" + "A" * 40 + "==",
    ],
)
def test_malformed_values_are_refused(stored: str) -> None:
    with pytest.raises(MalformedCiphertext):
        Vault(RING).decrypt(stored, tenant_id="t", name="n")


def test_errors_and_repr_never_show_material_or_plaintext() -> None:
    vault = Vault(RING)
    secret = "sk-very-secret-plaintext-0000"
    stored = vault.encrypt(secret, tenant_id="t1", name="n")
    for exc_type, call in (
        (DecryptionFailed, lambda: vault.decrypt(stored, tenant_id="t2", name="n")),
        (UnknownKeyId, lambda: Vault([("z", bytes(32))]).decrypt(stored, tenant_id="t1", name="n")),
    ):
        with pytest.raises(exc_type) as info:
            call()
        assert secret not in str(info.value)
        assert base64.b64encode(RING[0][1]).decode() not in str(info.value)
    assert "k2" in repr(vault)
    assert base64.b64encode(RING[0][1]).decode() not in repr(vault)
    assert "\\x02" not in repr(vault)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(vault)


def test_bad_key_ring_is_refused() -> None:
    with pytest.raises(VaultError, match="empty"):
        Vault([])
    with pytest.raises(VaultError, match="32 bytes"):
        Vault([("k1", b"short")])
    with pytest.raises(VaultError, match="twice"):
        Vault([("k1", bytes(32)), ("k1", bytes(32))])


def test_fingerprint_is_keyed_stable_and_not_the_plaintext() -> None:
    vault = Vault(RING)
    fp = vault.fingerprint("some-provider-key")
    assert len(fp) == 64 and fp == vault.fingerprint("some-provider-key")
    assert fp != vault.fingerprint("some-provider-kez")
    assert Vault(RING, fingerprint_key=b"f" * 32).fingerprint("some-provider-key") != fp
    # Explicit fingerprint key: stable across rotation of the encryption keys.
    a = Vault([("k1", bytes([1]) * 32)], fingerprint_key=b"f" * 32)
    b = Vault(RING, fingerprint_key=b"f" * 32)
    assert a.fingerprint("x-key") == b.fingerprint("x-key")


def test_last4() -> None:
    assert Vault.last4("sk-abcdefgh1234") == "1234"
    assert Vault.last4("short") == ""


def test_generated_keys_are_random_and_256_bit() -> None:
    a, b = generate_key(), generate_key()
    assert len(a) == 32 and a != b


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.text(min_size=1, max_size=300),
    tenant=st.text(min_size=1, max_size=40),
    name=st.text(min_size=1, max_size=40),
)
def test_round_trip_property(plaintext: str, tenant: str, name: str) -> None:
    vault = Vault(RING)
    stored = vault.encrypt(plaintext, tenant_id=tenant, name=name)
    assert vault.decrypt(stored, tenant_id=tenant, name=name) == plaintext


@settings(max_examples=100, deadline=None)
@given(plaintext=st.text(min_size=1, max_size=100), position=st.integers(min_value=0))
def test_any_single_bit_flip_is_detected(plaintext: str, position: int) -> None:
    vault = Vault(RING)
    stored = vault.encrypt(plaintext, tenant_id="t", name="n")
    blob = stored.split(":")[2]
    length = len(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    with pytest.raises(DecryptionFailed):
        vault.decrypt(_flip(stored, position % length), tenant_id="t", name="n")
