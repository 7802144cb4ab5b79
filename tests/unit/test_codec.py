"""Confluent-framed Avro encoding and the reasons a record is refused."""

from __future__ import annotations

import struct

import pytest

from services.kernel.cad import CadReferralMade
from services.kernel.errors import InvalidRecord
from services.kernel.lead import PageAcknowledged
from services.messaging.avro import AvroCodec, InMemorySchemaRegistry
from tests.factories import cad_referral, one_of_each


@pytest.fixture
def codec() -> AvroCodec:
    return AvroCodec(InMemorySchemaRegistry())


async def test_every_event_encodes_with_magic_byte_and_schema_id(codec) -> None:
    for event in one_of_each():
        data = await codec.encode(event)
        assert data[0] == 0
        assert struct.unpack(">I", data[1:5])[0] == await codec.schema_id(type(event))
        assert await codec.decode(data) == event


async def test_garbage_is_refused_as_not_confluent_framed(codec) -> None:
    with pytest.raises(InvalidRecord) as err:
        await codec.decode(b"{\"json\": true}")
    assert err.value.error_type == "decode"
    assert "magic byte" in err.value.reason


async def test_truncated_body_is_refused(codec) -> None:
    data = await codec.encode(cad_referral())
    with pytest.raises(InvalidRecord, match="does not match schema id"):
        await codec.decode(data[:20])


async def test_unknown_schema_id_is_refused(codec) -> None:
    with pytest.raises(InvalidRecord, match="schema id 999 is not in the registry"):
        await codec.decode(b"\x00" + struct.pack(">I", 999) + b"\x02")


async def test_event_type_not_expected_on_topic_is_refused(codec) -> None:
    data = await codec.encode(cad_referral())
    with pytest.raises(InvalidRecord, match="not expected on this topic"):
        await codec.decode(data, expected=(PageAcknowledged,))
    assert isinstance(await codec.decode(data, expected=(CadReferralMade,)), CadReferralMade)


async def test_valid_avro_that_breaks_model_rules_names_the_field_not_the_value(codec) -> None:
    bad = cad_referral().model_copy(update={"cad_event_id": "has spaces and / slashes"})
    data = await codec.encode(bad)  # model_copy skips validation: the bytes are well-formed Avro
    with pytest.raises(InvalidRecord) as err:
        await codec.decode(data)
    assert err.value.error_type == "validation"
    assert "cad_event_id" in err.value.reason
    assert "slashes" not in err.value.reason


async def test_oversized_record_is_refused(codec) -> None:
    with pytest.raises(InvalidRecord, match="exceeds"):
        await codec.decode(b"\x00" + b"x" * 2_000_000)
