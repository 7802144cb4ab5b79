"""Personal data is marked once, on the model (``Annotated[T, PERSONAL]``), and the Avro schemas carry the mark
as a PII tag. A field whose name or description says person, child, name, birth, phone, address,
description or narrative is marked, or is listed here with the reason it holds no personal value."""

from __future__ import annotations

import re

from pydantic import BaseModel

from services import runtime
from services.kernel.events import PII_TAG, all_events, personal_fields
from services.messaging.contract import avro_schema_of

LOOKS_PERSONAL = re.compile(r"person|child|name|birth|phone|address|description|narrative", re.IGNORECASE)

# (model, field) -> why it is not personal data, though its name or description says one of the words.
NOT_PERSONAL = {
    ("ReferralCreated", "late"): "a flag: whether the referral came past the warm-handoff window",
    ("PageRequested", "met_at"): "the CAD event's time, as referred_at is: a time, no one named",
    ("AccessAudited", "client_address"): "a staff member's network address, kept for the CJIS audit",
    ("AccessAudited", "user_id"): "a directory id",
    ("CadChildEncountered", "agency_id"): "an id", ("CadChildEncountered", "cad_event_id"): "an id",
    ("CadChildEncountered", "incident_id"): "CAD's incident number",
    ("CadOverdoseResponded", "fatal"): "a flag", ("OverdoseReported", "fatal"): "a flag",
    ("CadReferralMade", "consent"): "the consent's scope and dates",
    ("CadReferralMade", "incident_id"): "CAD's incident number",
    ("ReferralCreated", "incident_id"): "CAD's incident number",
    ("CadWalkInReported", "occurred_at"): "a time", ("WalkInOpened", "occurred_at"): "a time",
    ("CadWalkInReported", "station_id"): "a police station's id", ("WalkInOpened", "station_id"): "a station's id",
    ("DeadLetterRecorded", "error"): "names fields, never values",
    **{(m, field): why for m in ("SubjectKeyIssued", "SubjectKeyDestroyed", "ErasureReceipted")
       for field, why in (("subject_id", "a subject's id, never a name"), ("covers", "the kind of subject"))},
    ("SubjectKeyIssued", "part_of"): "another subject's id",
    ("ErasureReceipted", "note"): "the grounds' reference (a ticket or order number); handoff erase asks for no names",
    ("DisclosureAudited", "channel"): "a channel", ("DisclosureAudited", "subject_id"): "an id, never a name",
    ("FollowUpOpened", "kind"): "the person or the family: a kind",
    ("Header", "key"): "a header's name", ("ReferenceDataPublished", "key"): "a directory entry's id",
    ("HwcNoticeRequested", "notice_id"): "a keyed hash, not the values it is derived from",
    ("HwcTriageOpened", "due_at"): "a time", ("HwcTriageOpened", "reason"): "plain words without personal data",
    ("HwcTriageOpened", "roster_school_id"): "a school's id", ("HwcTriageOpened", "school_id_given"): "a school's id",
    ("HwcTriageResolved", "agency_id"): "an id",
    ("OverdosePerson", "address_source"): "where an address came from: a kind",
    ("ParticipantSeen", "cad_event_id"): "an id",
    ("ReferralStatusChanged", "changed_by"): "a staff id or a service's name",
    ("PushSubscribed", "person_id"): "a staff member's directory id", ("PushUnsubscribed", "person_id"): "a staff id",
    ("PushUnsubscribed", "reason"): "removed or gone: a kind",
    **{(m, "error"): "no personal data" for m in ("PageSent", "HwcNoticeDelivered", "HwcTriageAlerted",
                                                  "FollowUpAlertSent", "WalkInMessageSent", "FeedAlertSent")},
}


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}

    def walk(model: type[BaseModel]) -> None:
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for field in model.model_fields.values():
            for t in (field.annotation, *getattr(field.annotation, "__args__", ())):
                for inner in (t, *getattr(t, "__args__", ())):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        walk(inner)

    assert runtime.EVENTS  # every service's events are registered
    for event in all_events():
        walk(event)
    return found


def test_every_field_that_looks_personal_is_marked_or_says_why_not() -> None:
    unmarked = []
    for name, model in _models().items():
        marked = set(personal_fields(model))
        for field_name, field in model.model_fields.items():
            if LOOKS_PERSONAL.search(f"{field_name} {field.description or ''}") and field_name not in marked \
                    and (name, field_name) not in NOT_PERSONAL:
                unmarked.append(f"{name}.{field_name}")
    assert unmarked == []


def test_the_schemas_tag_exactly_the_marked_fields_pii() -> None:
    def tagged(schema, out: set[str]) -> set[str]:
        if isinstance(schema, dict):
            for field in schema.get("fields", []):
                if PII_TAG in field.get("confluent:tags", []):
                    out.add(f"{schema['name']}.{field['name']}")
                tagged(field["type"], out)
            for key in ("items", "values"):
                tagged(schema.get(key), out)
        elif isinstance(schema, list):
            for branch in schema:
                tagged(branch, out)
        return out

    for event in all_events():
        expected = {f"{m.__name__}.{f}" for m in _models().values() for f in personal_fields(m)}
        found = tagged(avro_schema_of(event), set())
        assert found <= expected, event.__name__
        assert {f"{event.__name__}.{f}" for f in personal_fields(event)} <= found, event.__name__
    assert personal_fields(_models()["Child"]) == ("first_name", "last_name", "date_of_birth")
