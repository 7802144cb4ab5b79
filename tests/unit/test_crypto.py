"""Envelope encryption's primitives (services/platform/crypto.py): values sealed with AES-256-GCM and bound to where
they belong, data keys wrapped by a key-encryption key that the local provider keeps in a 0600 file, made once."""

from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.platform.crypto import (
    KeyUnavailable,
    LocalKeyProvider,
    SealBroken,
    binding,
    new_data_key,
    open_sealed,
    seal,
)

WHERE = binding("handoff.lead.referrals", "person.first_name", "REF-1")


def test_a_sealed_value_opens_with_its_key_where_it_was_written() -> None:
    key = new_data_key()
    sealed = seal(key, b"Dana", WHERE)
    assert b"Dana" not in sealed
    assert open_sealed(key, sealed, WHERE) == b"Dana"
    assert seal(key, b"Dana", WHERE) != sealed  # a fresh nonce each time: equal values do not look equal


def test_the_seal_is_standard_aes_256_gcm() -> None:
    """Read back with the library's AESGCM alone, from the documented layout: version | nonce | ciphertext+tag."""
    key = new_data_key()
    sealed = seal(key, b"Dana", WHERE)
    assert len(key) == 32 and sealed[0] == 1
    assert AESGCM(key).decrypt(sealed[1:13], sealed[13:], WHERE) == b"Dana"


@pytest.mark.parametrize("elsewhere", [
    binding("handoff.paging.pages", "person.first_name", "REF-1"),  # another topic
    binding("handoff.lead.referrals", "person.last_name", "REF-1"),  # another field
    binding("handoff.lead.referrals", "person.first_name", "REF-2"),  # another subject's record
], ids=["topic", "field", "subject"])
def test_a_value_moved_to_another_record_fails_to_open(elsewhere) -> None:
    key = new_data_key()
    with pytest.raises(SealBroken):
        open_sealed(key, seal(key, b"Dana", WHERE), elsewhere)


def test_a_tampered_value_or_another_key_fails_to_open() -> None:
    key = new_data_key()
    sealed = bytearray(seal(key, b"Dana", WHERE))
    sealed[-1] ^= 1
    with pytest.raises(SealBroken):
        open_sealed(key, bytes(sealed), WHERE)
    with pytest.raises(SealBroken):
        open_sealed(new_data_key(), seal(key, b"Dana", WHERE), WHERE)
    with pytest.raises(SealBroken):
        open_sealed(key, b"Dana", WHERE)  # plain text where a sealed value belongs


def test_the_local_provider_makes_its_key_once_in_a_private_file(tmp_path) -> None:
    provider = LocalKeyProvider(tmp_path / "keys")
    kek_file = tmp_path / "keys" / f"{provider.current}.kek"
    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    data_key = new_data_key()
    wrapped = provider.wrap(data_key, "key-1")
    assert data_key not in wrapped.wrapped
    again = LocalKeyProvider(tmp_path / "keys")  # another process, or a restart: the same key
    assert again.current == provider.current
    assert again.unwrap(wrapped, "key-1") == data_key
    with pytest.raises(SealBroken):
        again.unwrap(wrapped, "key-2")  # a wrapped key is bound to its id


def test_rotation_keeps_old_wraps_open_until_the_old_key_is_retired(tmp_path) -> None:
    provider = LocalKeyProvider(tmp_path / "keys")
    data_key = new_data_key()
    old = provider.wrap(data_key, "key-1")
    first = provider.current
    second = provider.rotate()
    assert second != first and provider.current == second
    new = provider.wrap(data_key, "key-1")
    assert new.kek_id == second
    assert provider.unwrap(old, "key-1") == provider.unwrap(new, "key-1") == data_key
    with pytest.raises(ValueError):
        provider.retire(second)
    provider.retire(first)
    with pytest.raises(KeyUnavailable):
        provider.unwrap(old, "key-1")
    assert provider.unwrap(new, "key-1") == data_key


def test_a_rotation_by_another_process_is_seen_once_the_files_are_read_again(tmp_path) -> None:
    clock = [0.0]
    worker = LocalKeyProvider(tmp_path / "keys", cache_seconds=1.0, monotonic=lambda: clock[0])
    first = worker.current  # made here
    worker.wrap(new_data_key(), "key-0")  # read back, and held
    operator = LocalKeyProvider(tmp_path / "keys")  # `handoff keys rotate`, in a process of its own
    second = operator.rotate()
    assert worker.current == first  # read at most once a second, not on every wrap
    clock[0] = 1.0
    assert worker.current == second and worker.wrap(new_data_key(), "key-1").kek_id == second
