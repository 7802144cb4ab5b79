"""Personal values sealed in the Avro datum, by the codec, on every topic Handoff writes.

Each leaf an event marks ``PERSONAL`` (text or a date) is written as the bytes of ``crypto.seal`` under its
subject's data key, bound to the topic, the field's path and the subject; the Avro schema gives such a leaf a
``bytes`` branch beside its plain type (``contract.sealable``), so records written in plain text before, or by a
CAD system, still read as they always did. A sealed leaf is:

    version (1 byte) | length of the key id (1 byte) | key id (ASCII) | crypto.seal(...)

The subject is the record's key (a referral, CAD event, notice, follow-up or walk-in id): erasing it destroys
the key that opens every personal value written about it, on every topic (and the keys of the subjects linked to
it: ``SubjectKeys.linked``). A worker's tables are sealed too, each value whole (``SealedValues``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import date
from functools import cache
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from services.kernel.errors import InvalidRecord
from services.kernel.events import ERASED_CONTEXT, personal_fields
from services.kernel.store import CompactValues
from services.kernel.topics import TopicSpec, by_name
from services.platform.crypto import KeyUnavailable, SealBroken, binding, open_sealed, seal

VERSION = b"\x02"
#: The subject (record key) of the record being handled, set by the record processor: a key made while it is
#: handled is ``part_of`` it, and what a handler stores in a table is sealed under it.
handled_subject: ContextVar[str | None] = ContextVar("handled_subject", default=None)
Path = tuple[str, ...]
M = TypeVar("M", bound=BaseModel)


def subject_of(key: bytes | None) -> str | None:
    """Who a record is about: its key (a referral, CAD event, notice, follow-up or walk-in id), whose data key seals
    its personal values."""
    return key.decode("utf-8", "replace") if key else None


def _inner(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...] / list[...] / Annotated[...], whether it is a list)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        [annotation] = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _inner(annotation)
    if origin is list:
        return _inner(typing.get_args(annotation)[0])[0], True
    return annotation, False


@cache
def personal_leaves(model: type[BaseModel]) -> tuple[tuple[Path, bool], ...]:
    """Every marked leaf of ``model``: (its path, whether it is a date). A list of records is one ``*`` step."""
    marked = set(personal_fields(model))
    found: list[tuple[Path, bool]] = []
    for name, field in model.model_fields.items():
        inner, is_list = _inner(field.annotation)
        step: Path = (name, "*") if is_list else (name,)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found += [(step + path, is_date) for path, is_date in personal_leaves(inner)]
        elif name in marked:
            found.append((step, isinstance(inner, type) and issubclass(inner, date)))
    return tuple(found)


def _visit(datum: Any, path: Path, change: Callable[[Any, str], Any], done: Path = ()) -> None:
    """Apply ``change(value, dotted path)`` to the leaf at ``path`` in a datum of dicts and lists, in place."""
    if datum is None:
        return
    step, rest = path[0], path[1:]
    if step == "*":
        for item in datum:
            _visit(item, rest, change, done)
        return
    if not rest:
        if datum.get(step) is not None:
            datum[step] = change(datum[step], ".".join((*done, step)))
        return
    _visit(datum.get(step), rest, change, (*done, step))


def seal_datum(datum: dict[str, Any], model: type[BaseModel], topic: str, subject: str, key_id: str,
               key: bytes) -> dict[str, Any]:
    """Seal every personal leaf of ``datum`` (a ``model``'s Avro datum), in place."""
    prefix = VERSION + bytes([len(key_id)]) + key_id.encode("ascii")

    def sealed(value: Any, where: str) -> bytes:
        plain = value.isoformat() if isinstance(value, date) else str(value)
        return prefix + seal(key, plain.encode(), binding(topic, where, subject))

    for path, _is_date in personal_leaves(model):
        _visit(datum, path, sealed)
    return datum


def key_id_of(sealed: bytes) -> str:
    if sealed[:1] != VERSION or len(sealed) < 2 or len(sealed) < 2 + sealed[1]:
        raise SealBroken("not a sealed value")
    return sealed[2:2 + sealed[1]].decode("ascii")


def open_datum(datum: dict[str, Any], model: type[BaseModel], topic: str, subject: str,
               key_for: Callable[[str], bytes], erased_ok: bool = False) -> tuple[dict[str, Any], int, int]:
    """Open every sealed leaf of ``datum`` in place with ``key_for(key_id)``; returns the datum, how many leaves
    were in plain text (a CAD system's record; elsewhere, input to refuse) and how many were erased (their key
    destroyed: ``None`` when ``erased_ok``, else ``KeyUnavailable`` is raised)."""
    plain_leaves = erased_leaves = 0

    def opened(value: Any, where: str, is_date: bool) -> Any:
        nonlocal plain_leaves, erased_leaves
        if not isinstance(value, bytes):
            plain_leaves += 1
            return value
        key_id = key_id_of(value)
        try:
            key = key_for(key_id)
        except KeyUnavailable as exc:
            if not (erased_ok and exc.args == ("destroyed",)):
                raise
            erased_leaves += 1
            return None
        text = open_sealed(key, value[2 + len(key_id):], binding(topic, where, subject)).decode()
        return date.fromisoformat(text) if is_date else text

    for path, is_date in personal_leaves(model):
        _visit(datum, path, lambda value, where, is_date=is_date: opened(value, where, is_date))
    return datum, plain_leaves, erased_leaves


def without_personal_values(datum: dict[str, Any], model: type[BaseModel], keep: frozenset[str] = frozenset()) -> None:
    """Every personal leaf of ``datum`` (sealed or not) set to None, in place, but those whose dotted path is in
    ``keep`` (``person.first_name``; a list's step is ``*``): validated with ``ERASED_CONTEXT``, the record reads
    as an erased subject's, as far as it was not kept."""
    for path, _is_date in personal_leaves(model):
        if ".".join(path) not in keep:
            _visit(datum, path, lambda _value, _where: None)


def erased_copy(value: M) -> M:
    """``value`` (an event or a record in one) with its personal values gone, as a reader shows an erased subject's:
    what a read model holds already when the subject's key is destroyed."""
    model = type(value)
    data = value.model_dump()
    without_personal_values(data, model)
    return model.model_validate(data, context=ERASED_CONTEXT)


def sealed_key_ids(datum: dict[str, Any], model: type[BaseModel]) -> set[str]:
    """The ids of the keys the sealed leaves of ``datum`` name."""
    found: set[str] = set()

    def note(value: Any, _where: str) -> Any:
        if isinstance(value, bytes):
            found.add(key_id_of(value))
        return value

    for path, _is_date in personal_leaves(model):
        _visit(datum, path, note)
    return found


class IssuedKey(Protocol):
    key_id: str
    key: bytes


class Keys(Protocol):
    """The subject keys a sealer uses (``subject_keys.SubjectKeys``)."""

    async def issue(self, subject_id: str, covers: str) -> IssuedKey: ...

    def issue_now(self, subject_id: str, covers: str) -> IssuedKey: ...

    def landing(self, subject_id: str) -> Awaitable[Any] | None: ...

    def erase_soon(self, subject_id: str) -> None: ...

    def destroyed(self, subject_id: str, key_id: str) -> bool: ...

    def knows(self, subject_id: str, key_id: str) -> bool: ...

    async def known(self, subject_id: str, key_id: str) -> bool: ...

    def open(self, subject_id: str, key_id: str) -> bytes: ...


class Sealer:
    """What the codec seals with: every personal leaf of a record, under the data key of its subject (the
    record's key), bound to the topic it is on (its name without the environment's prefix, so that a record
    mirrored to another environment still opens there)."""

    def __init__(self, keys: Keys, prefix: str = "") -> None:
        self.keys = keys
        self.prefix = prefix

    def _spec(self, topic: str) -> TopicSpec:
        try:
            return by_name(topic, self.prefix)
        except KeyError:
            raise InvalidRecord("sealing", f"topic {topic} is not one Handoff knows") from None

    async def seal(self, model: type[BaseModel], datum: dict[str, Any], topic: str, subject: str) -> None:
        if not personal_leaves(model):
            return
        spec = self._spec(topic)
        try:
            key = await self.keys.issue(subject, covers=spec.name)
        except KeyUnavailable:
            raise InvalidRecord("sealing", "its subject was erased: nothing more is written about it") from None
        seal_datum(datum, model, spec.name, subject, key.key_id, key.key)

    def landing(self, subject: str) -> Awaitable[Any] | None:
        """The write of the subject's key, while it is still on its way to the broker: a record sealed under it is
        sent after it, never before."""
        return self.keys.landing(subject)

    async def open(self, model: type[BaseModel], datum: dict[str, Any], topic: str, subject: str,
                   erased_ok: bool = False) -> bool:
        """Open ``datum`` in place; True when some of it was erased. ``InvalidRecord`` with the reason for what a
        worker must not act on: plain text where values are sealed, a key unknown or destroyed, a value tampered
        with or moved from another record. A reader (``erased_ok``: a read model, an operator's command) shows an
        erased subject's values as None, and a record written before sealing began as it was."""
        if not personal_leaves(model):
            return False
        spec = self._spec(topic)
        try:
            for key_id in sealed_key_ids(datum, model):
                if not self.keys.knows(subject, key_id):  # its issuer wrote it before the record: on its way here
                    await self.keys.known(subject, key_id)
            _, plain, erased = open_datum(datum, model, spec.name, subject,
                                          lambda key_id: self.keys.open(subject, key_id), erased_ok)
        except KeyUnavailable as exc:
            reason = "its subject was erased (key destroyed)" if exc.args == ("destroyed",) else "key unknown"
            raise InvalidRecord("sealing", f"sealed under a key that does not open it: {reason}") from None
        except SealBroken:
            raise InvalidRecord("sealing", "a sealed value does not open: tampered with, or moved from another "
                                           "record") from None
        if plain and not spec.plain_from_outside and not erased_ok:  # a reader shows history written before sealing
            raise InvalidRecord("sealing", f"{plain} personal value(s) in plain text on {spec.name}, where they are "
                                           "sealed")
        return erased > 0


# --- tables: each value sealed whole -----------------------------------------------------------------------------
TABLE_VERSION = b"\x03"


class SealedValues(CompactValues):
    """A table whose values are sealed whole, in memory and on its changelog, under the data key of the entry's
    own key when the table is keyed by subject (``keyed_by_subject``: a referral, notice, walk-in, follow-up; the
    key its events are sealed under too, so an item makes one data key, and erasing one child's notice leaves
    a sibling's readable), else under the subject being handled when written (``handled_subject``: an outbox,
    keyed by delivery attempt), bound to the table and the entry's key. A stored value is:

        version | length | subject | length | key id | crypto.seal(JSON bytes)

    A value of an erased subject reads as None (the entry is gone as far as the service can tell). Values stored
    in plain JSON before sealing (a changelog written by older code) read as before, and are sealed when written
    again."""

    def __init__(self, raw: Any, keys: Keys, name: str, keyed_by_subject: bool = False) -> None:
        super().__init__(raw)
        self.__dict__["subject_keys"] = keys
        self.__dict__["table"] = name
        self.__dict__["keyed_by_subject"] = keyed_by_subject

    def __getitem__(self, key: str) -> Any:
        found = self._opened(key, self.raw[key])
        if found is None:
            raise KeyError(key)
        return found

    def get(self, key: str, default: Any = None) -> Any:
        stored = self.raw.get(key)
        found = None if stored is None else self._opened(key, stored)
        return default if found is None else found

    def __contains__(self, key: object) -> bool:
        stored = self.raw.get(key)
        return stored is not None and not self._erased(stored)

    def __iter__(self) -> Any:  # an erased subject's entries are not there, for a scan as for a look-up
        return iter([key for key, stored in list(self.raw.items()) if not self._erased(stored)])

    def _erased(self, stored: bytes) -> bool:
        if stored[:1] != TABLE_VERSION:
            return False
        subject, rest = _unframed(stored[1:])
        return self.subject_keys.destroyed(subject, _unframed(rest)[0])

    def erase_soon(self, subject: str) -> None:
        """The subject's retention ended: destroy its data keys (and its linked subjects'), among the sends of the
        record being handled."""
        self.subject_keys.erase_soon(subject)

    def __setitem__(self, key: str, value: Any) -> None:
        subject = key if self.keyed_by_subject else handled_subject.get() or key
        try:
            data_key = self.subject_keys.issue_now(subject, covers=self.table)
        except KeyUnavailable:
            raise InvalidRecord("sealing", "its subject was erased: nothing more is kept about it") from None
        head = _framed(subject) + _framed(data_key.key_id)
        self.raw[key] = TABLE_VERSION + head + seal(data_key.key, self.encode(value),
                                                    binding(self.table, key, subject))

    def _opened(self, key: str, stored: bytes) -> Any:
        if stored[:1] != TABLE_VERSION:
            return self.decode(stored)  # plain JSON, stored before values were sealed
        subject, rest = _unframed(stored[1:])
        key_id, sealed = _unframed(rest)
        try:
            plain = open_sealed(self.subject_keys.open(subject, key_id), sealed, binding(self.table, key, subject))
        except KeyUnavailable:
            return None
        return self.decode(plain)


def _framed(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _unframed(data: bytes) -> tuple[str, bytes]:
    size = int.from_bytes(data[:2], "big")
    return data[2:2 + size].decode(), data[2 + size:]
