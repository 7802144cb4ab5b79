"""The codec seals a record's personal values (and a table each value whole) under its subject's key and opens them again (services/messaging/
avro.py with sealing.Sealer). What it refuses, as a worker must: plain text where values are sealed, a key unknown
or destroyed, a value moved between records. A reader (``erased_ok``) shows an erased subject's values as None.
The keys here are held in memory; tests/integration/test_sealed_topics.py runs the same on a broker."""

from __future__ import annotations

import io
import secrets
import struct
from dataclasses import dataclass, field

import fastavro
import pytest

from services.kernel.errors import InvalidRecord
from services.kernel.lead import ReferralCreated
from services.kernel.store import TypedRecords
from services.messaging.avro import AvroCodec, InMemorySchemaRegistry, to_avro_datum
from services.messaging.contract import parsed_schema
from services.messaging.sealing import SealedValues, Sealer, handled_subject
from services.platform.crypto import KeyUnavailable, SealBroken, new_data_key
from tests.factories import cad_referral, one_of_each

REFERRALS, CAD = "t.handoff.lead.referrals", "t.handoff.cad.referrals"


@dataclass
class Issued:
    key_id: str
    key: bytes


@dataclass
class KeysInMemory:
    keys: dict[tuple[str, str], bytes | None] = field(default_factory=dict)  # None: destroyed
    synced: int = 0

    async def issue(self, subject_id: str, covers: str) -> Issued:
        return self.issue_now(subject_id, covers)

    def issue_now(self, subject_id: str, covers: str) -> Issued:
        for (subject, key_id), key in self.keys.items():
            if subject == subject_id:
                if key is None:
                    raise KeyUnavailable("erased")
                return Issued(key_id, key)
        key_id, key = secrets.token_hex(4), new_data_key()
        self.keys[(subject_id, key_id)] = key
        return Issued(key_id, key)

    def knows(self, subject_id: str, key_id: str) -> bool:
        return (subject_id, key_id) in self.keys

    def landing(self, subject_id: str) -> None:
        return None  # written as soon as issued

    async def known(self, subject_id: str, key_id: str) -> bool:
        self.synced += 1
        return self.knows(subject_id, key_id)

    def open(self, subject_id: str, key_id: str) -> bytes:
        if (subject_id, key_id) not in self.keys:
            raise KeyUnavailable("unknown")
        key = self.keys[(subject_id, key_id)]
        if key is None:
            raise KeyUnavailable("destroyed")
        return key

    def destroyed(self, subject_id: str, key_id: str) -> bool:
        return self.keys.get((subject_id, key_id), b"") is None

    def erase_soon(self, subject_id: str) -> None:
        self.destroy(subject_id)

    def destroy(self, subject_id: str) -> None:
        for subject, key_id in list(self.keys):
            if subject == subject_id:
                self.keys[(subject, key_id)] = None


@pytest.fixture
def keys() -> KeysInMemory:
    return KeysInMemory()


@pytest.fixture
def codec(keys: KeysInMemory) -> AvroCodec:
    return AvroCodec(InMemorySchemaRegistry(), sealer=Sealer(keys, prefix="t."))


def referral() -> ReferralCreated:
    return next(e for e in one_of_each() if isinstance(e, ReferralCreated))


async def test_a_referral_is_written_with_no_personal_value_in_it_and_reads_back_whole(codec: AvroCodec) -> None:
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    for personal in (event.person.first_name, event.person.last_name, event.officer.callback_phone,
                     event.location.description):
        assert personal.encode() not in value
    assert await codec.decode(value, (ReferralCreated,), REFERRALS, event.referral_id) == event


async def test_plain_text_is_refused_where_values_are_sealed_and_read_where_cad_writes_it(codec: AvroCodec) -> None:
    event = referral()
    plain = await AvroCodec(codec.registry).encode(event)  # a codec without keys writes as a CAD system does
    with pytest.raises(InvalidRecord, match="plain text on handoff.lead.referrals"):
        await codec.decode(plain, None, REFERRALS, event.referral_id)
    # A reader (the console's read model) still shows a record written before sealing began, as it was.
    assert await codec.decode(plain, None, REFERRALS, event.referral_id, erased_ok=True) == event
    from_cad = await AvroCodec(codec.registry).encode(cad_referral("CAD-9"))
    assert (await codec.decode(from_cad, None, CAD, "CAD-9")).person.last_name == cad_referral("CAD-9").person.last_name


async def test_a_value_moved_to_another_record_or_topic_does_not_open(codec: AvroCodec) -> None:
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    with pytest.raises(InvalidRecord, match="tampered with, or moved"):
        await codec.decode(value, None, "t.handoff.paging.pages", event.referral_id)
    tampered = value[:-3] + bytes([value[-3] ^ 1]) + value[-2:]
    with pytest.raises(InvalidRecord):
        await codec.decode(tampered, None, REFERRALS, event.referral_id)


async def test_a_key_not_yet_seen_is_looked_for_before_the_record_is_refused(codec: AvroCodec,
                                                                             keys: KeysInMemory) -> None:
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    keys.keys.clear()
    with pytest.raises(InvalidRecord, match="key unknown"):
        await codec.decode(value, None, REFERRALS, event.referral_id)
    assert keys.synced == 1


async def test_an_erased_subject_is_refused_to_a_worker_and_shown_erased_to_a_reader(codec: AvroCodec,
                                                                                    keys: KeysInMemory) -> None:
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    keys.destroy(event.referral_id)
    with pytest.raises(InvalidRecord, match="erased"):
        await codec.decode(value, None, REFERRALS, event.referral_id)
    shown = await codec.decode(value, None, REFERRALS, event.referral_id, erased_ok=True)
    assert shown.person.first_name is None and shown.person.date_of_birth is None and shown.location.description is None
    assert shown.referral_id == event.referral_id and shown.site_id == event.site_id  # what figures count stays
    with pytest.raises(InvalidRecord, match="erased"):  # and nothing new is written about it
        await codec.encode(event, REFERRALS, event.referral_id)


async def test_a_reader_without_keys_refuses_sealed_values_rather_than_read_bytes_as_text(codec: AvroCodec) -> None:
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    with pytest.raises(InvalidRecord, match="holds no keys"):
        await AvroCodec(codec.registry).decode(value)


async def test_bytes_that_are_not_even_a_sealed_value_are_refused_with_a_reason(codec: AvroCodec) -> None:
    event = referral()
    datum = to_avro_datum(event)
    datum["person"]["first_name"] = b"\x00not sealed"
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed_schema(ReferralCreated), datum)
    frame = struct.pack(">bI", 0, await codec.schema_id(ReferralCreated)) + body.getvalue()
    with pytest.raises(InvalidRecord, match="holds no keys"):
        await AvroCodec(codec.registry).decode(frame)
    with pytest.raises(InvalidRecord, match="tampered with, or moved"):
        await codec.decode(frame, None, REFERRALS, event.referral_id)


async def test_every_event_with_personal_values_round_trips_sealed(codec: AvroCodec) -> None:
    for event in one_of_each():
        value = await codec.encode(event, "t.handoff.ops.audit", "subject-1")
        assert await codec.decode(value, None, "t.handoff.ops.audit", "subject-1") == event


def test_a_table_holds_its_values_sealed_under_the_subject_being_handled(keys: KeysInMemory) -> None:
    raw: dict[str, bytes] = {}
    table = SealedValues(raw, keys, "notices")
    token = handled_subject.set("cad-7")  # the encounter being handled: what its notice holds is its data
    try:
        table["notice-1"] = {"child": "Ada Lovelace"}
    finally:
        handled_subject.reset(token)
    assert b"Lovelace" not in raw["notice-1"] and table["notice-1"] == {"child": "Ada Lovelace"}
    assert "notice-1" in table and list(table.items()) == [("notice-1", {"child": "Ada Lovelace"})]
    raw["notice-2"] = raw["notice-1"]  # a value moved to another entry does not open
    with pytest.raises(SealBroken):
        table.get("notice-2")
    del raw["notice-2"]
    keys.destroy("cad-7")
    assert table.get("notice-1") is None and "notice-1" not in table and list(table.items()) == []
    assert TypedRecords(table, dict).get("notice-1") is None and list(TypedRecords(table, dict).items()) == []
    token = handled_subject.set("cad-7")
    try:
        with pytest.raises(InvalidRecord, match="erased"):
            table["notice-3"] = {"child": "again"}  # written while cad-7 is handled, after its erasure
    finally:
        handled_subject.reset(token)
    raw["old"] = b'{"written":"before sealing"}'
    assert table["old"] == {"written": "before sealing"}


async def test_a_reader_that_needs_no_personal_value_opens_none_and_asks_for_no_key(codec: AvroCodec,
                                                                                    keys: KeysInMemory) -> None:
    """A caseload or a feed's last-event time reads ids, statuses and times: its copy holds no personal value, it
    opens nothing, and a key it has not seen (or one destroyed) is no reason to wait or refuse."""
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    keys.keys.clear()  # no key known here at all
    read = await codec.decode(value, (ReferralCreated,), REFERRALS, event.referral_id, erased_ok=True, personal=False)
    assert (read.referral_id, read.site_id, read.referred_at) == (event.referral_id, event.site_id, event.referred_at)
    assert read.person.first_name is None and read.officer.callback_phone is None and read.location.description is None
    assert keys.synced == 0  # no key looked for
    plain = await codec.decode(await AvroCodec(codec.registry).encode(cad_referral()), topic=CAD, subject="c",
                               personal=False)  # a CAD's own plain record: its names are not kept either
    assert plain.person.first_name is None and plain.cad_event_id == cad_referral().cad_event_id


async def test_a_reader_that_needs_some_personal_values_opens_only_those(codec: AvroCodec) -> None:
    """The inactive-participants index reads what a person key is made of: the rest of the referral stays sealed in
    its copy (and costs it nothing to open)."""
    event = referral()
    value = await codec.encode(event, REFERRALS, event.referral_id)
    read = await codec.decode(value, (ReferralCreated,), REFERRALS, event.referral_id, erased_ok=True,
                              personal=frozenset({"person.first_name", "person.date_of_birth"}))
    assert (read.person.first_name, read.person.date_of_birth) == (event.person.first_name, event.person.date_of_birth)
    assert read.person.last_name is None and read.officer.callback_phone is None and read.location.description is None
