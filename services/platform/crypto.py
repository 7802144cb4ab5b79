"""Envelope encryption of personal values (issue #26).

Two levels of key:
- a **data key** per subject (one person, one child, one walk-in): AES-256-GCM, seals that subject's
  personal values. Destroying it erases every copy of them at once (crypto-shredding);
- a **key-encryption key** (KEK) held by a ``KeyProvider``: it wraps the data keys, which are kept
  wrapped only. Rotating it re-wraps the data keys and touches no data record.

Each sealed value is bound (AES-GCM associated data) to the topic, the field and the subject it was
written for: moved to another record, it fails to open. The cipher is ``cryptography``'s AESGCM; no
cipher code here.

A cloud KMS or Vault plugs in as another ``KeyProvider``: ``wrap`` and ``unwrap`` become its
Encrypt/Decrypt (AWS KMS, Google Cloud KMS, Azure Key Vault wrapKey/unwrapKey) or Vault Transit's
``encrypt``/``decrypt`` with a named key, and ``rotate`` its key rotation; the KEK never leaves it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.platform.settings import Settings

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's standard nonce; random per value (2^32 values per key stay far below the collision bound)
SEALED_VERSION = b"\x01"


class KeyUnavailable(Exception):
    """A value's key is unknown or destroyed: the value reads as erased."""


class SealBroken(Exception):
    """A sealed value was altered, or moved from the record, field or subject it was written for."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key as it is kept: sealed under the KEK named ``kek_id``."""

    kek_id: str
    wrapped: bytes


class KeyProvider(Protocol):
    """Holds the key-encryption keys. Data keys pass through it only to be wrapped or unwrapped."""

    @property
    def current(self) -> str:
        """The id of the key-encryption key that wraps new data keys."""
        ...

    def wrap(self, data_key: bytes, key_id: str) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, key_id: str) -> bytes: ...

    def rotate(self) -> str:
        """Make a new current KEK and return its id; the older ones still unwrap until retired."""
        ...

    def retire(self, kek_id: str) -> None:
        """Destroy an older KEK once nothing is wrapped under it (after re-wrapping)."""
        ...


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def binding(topic: str, field: str, subject: str) -> bytes:
    """The associated data a value is sealed with: where it belongs. Unit separators keep the parts apart."""
    return "\x1f".join((topic, field, subject)).encode()


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """version (1 byte) | nonce (12) | ciphertext and GCM tag."""
    nonce = os.urandom(NONCE_BYTES)
    return SEALED_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != SEALED_VERSION:
        raise SealBroken("not a sealed value")
    try:
        return AESGCM(key).decrypt(sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:], associated)
    except InvalidTag:
        raise SealBroken("the value was altered or does not belong here") from None


def key_provider(settings: Settings) -> KeyProvider:
    """The configured provider: the local one, until a KMS or Vault provider is added beside it."""
    return LocalKeyProvider(settings.kek_directory or settings.data_dir / "keys")


class LocalKeyProvider:
    """KEKs in a directory outside the repo, one file each (0600), made once; ``current`` names the one that
    wraps new data keys. For a single machine and the tests: a deployment uses a KMS or Vault (see above)."""

    def __init__(self, directory: Path, cache_seconds: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory  # made, with the first KEK, when a key is first wrapped
        # Read from the files at most once a second, not on every wrap (three file reads a data key, measured at a
        # twentieth of a busy worker's time); a rotation or retirement by another process is seen within that.
        self.cache_seconds, self.monotonic = cache_seconds, monotonic
        self._read: dict[str, tuple[float, str | None]] = {}

    def _file(self, name: str) -> str | None:
        now = self.monotonic()
        cached = self._read.get(name)
        if cached is None or now - cached[0] >= self.cache_seconds:
            path = self.directory / name
            cached = self._read[name] = (now, path.read_text().strip() if path.exists() else None)
        return cached[1]

    @property
    def current(self) -> str:
        return self._file("current") or self.rotate()

    def _kek(self, kek_id: str) -> bytes:
        kek = self._file(f"{kek_id}.kek")
        if kek is None:
            raise KeyUnavailable(f"key-encryption key {kek_id} is retired")
        return bytes.fromhex(kek)

    def wrap(self, data_key: bytes, key_id: str) -> WrappedKey:
        kek_id = self.current
        return WrappedKey(kek_id, seal(self._kek(kek_id), data_key, binding("data-key", kek_id, key_id)))

    def unwrap(self, wrapped: WrappedKey, key_id: str) -> bytes:
        return open_sealed(self._kek(wrapped.kek_id), wrapped.wrapped, binding("data-key", wrapped.kek_id, key_id))

    def rotate(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        kek_id = f"kek-{secrets.token_hex(4)}"
        path = self.directory / f"{kek_id}.kek"
        path.touch(mode=0o600, exist_ok=False)
        path.write_text(new_data_key().hex())
        current = self.directory / "current.new"
        current.write_text(kek_id)
        current.replace(self.directory / "current")
        self._read.clear()  # this process sees its own rotation at once
        return kek_id

    def retire(self, kek_id: str) -> None:
        if kek_id == self.current:
            raise ValueError("the current key-encryption key wraps new data keys: rotate first")
        (self.directory / f"{kek_id}.kek").unlink(missing_ok=True)
        self._read.clear()
