"""Personal leaves sealed in the Avro datum (services/messaging/sealing.py), through the real schemas: no name in
the encoded body, the same event back once opened, and a value moved to another record fails to open."""

from __future__ import annotations

import io

import fastavro
import pytest

from services.kernel.cad import CadReferralMade
from services.kernel.lead import ReferralCreated
from services.messaging.avro import to_avro_datum
from services.messaging.contract import parsed_schema
from services.messaging.sealing import key_id_of, open_datum, personal_leaves, seal_datum
from services.platform.crypto import SealBroken, new_data_key
from tests.factories import cad_referral, one_of_each

TOPIC = "handoff.lead.referrals"


def written(cls, datum) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(cls), datum)
    return buf.getvalue()


def read(cls, body: bytes) -> dict:
    return fastavro.schemaless_reader(io.BytesIO(body), parsed_schema(cls), parsed_schema(cls))


def test_the_personal_leaves_of_a_referral_are_found_through_its_records() -> None:
    paths = {".".join(path): is_date for path, is_date in personal_leaves(ReferralCreated)}
    assert {"person.first_name", "person.last_name", "person.description", "location.description"} <= set(paths)
    assert paths["person.date_of_birth"] is True and paths["person.first_name"] is False


def test_a_sealed_referral_shows_no_name_and_opens_to_the_same_event() -> None:
    event = next(e for e in one_of_each() if isinstance(e, ReferralCreated))
    key = new_data_key()
    body = written(ReferralCreated, seal_datum(to_avro_datum(event), ReferralCreated, TOPIC, event.referral_id,
                                               "k1", key))
    assert event.person.last_name.encode() not in body and event.person.first_name.encode() not in body
    opened, plain, _erased = open_datum(read(ReferralCreated, body), ReferralCreated, TOPIC, event.referral_id,
                               lambda key_id: key)
    assert plain == 0 and ReferralCreated.model_validate(opened) == event


def test_a_plain_record_as_cad_writes_it_reads_as_before_and_is_counted_plain() -> None:
    event = cad_referral("CAD-PLAIN")
    opened, plain, _erased = open_datum(read(CadReferralMade, written(CadReferralMade, to_avro_datum(event))), CadReferralMade,
                               "handoff.cad.referrals", "CAD-PLAIN", lambda key_id: pytest.fail("no key asked"))
    assert plain > 0 and CadReferralMade.model_validate(opened) == event


def test_a_value_moved_to_another_subjects_record_fails_to_open() -> None:
    event = next(e for e in one_of_each() if isinstance(e, ReferralCreated))
    key = new_data_key()
    sealed = seal_datum(to_avro_datum(event), ReferralCreated, TOPIC, event.referral_id, "k1", key)
    assert key_id_of(sealed["person"]["first_name"]) == "k1"
    with pytest.raises(SealBroken):
        open_datum(read(ReferralCreated, written(ReferralCreated, sealed)), ReferralCreated, TOPIC, "another-referral",
                   lambda key_id: key)
