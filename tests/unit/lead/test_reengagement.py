"""Police meet an inactive LEAD participant again: the case manager who took the referral hears where
and when, within the person's consent; the CAD side hears nothing; matching uses the same name and
date-of-birth normalization as Handle With Care."""

from __future__ import annotations

from datetime import date, timedelta

from services.kernel.clock import FakeClock
from services.kernel.events import (
    ERASED_CONTEXT,
    AcknowledgedVia,
    DeliveryOutcome,
    Milestone,
    ReferralStatus,
    ReferredPerson,
)
from services.kernel.identity import person_key
from services.kernel.lead import (
    EngagementRecorded,
    PageAcknowledged,
    ParticipantSeen,
    ReferralCreated,
    ReferralStatusChanged,
)
from services.messaging.events import DisclosedRecord, DisclosureAudited
from services.messaging.kafka import InMemoryPublisher
from services.messaging.sealing import without_personal_values
from services.notifier.service import page_id_for
from services.referral_intake.domain.model import open_referral
from services.referral_intake.domain.participants import InactiveParticipants
from services.referral_intake.service import ReferralIntake
from tests.factories import cad_referral, person
from tests.unit.lead.test_notifier_service import REF, T0, Harness, with_consent

KEY = person_key("Zebulon", "Featherstonehaugh", date(1987, 3, 14))


def created(referral_id: str = "r-old", **person_changes):
    cad = cad_referral("CAD-OLD", occurred_at=T0)
    cad = cad.model_copy(update={"person": ReferredPerson(**{**person().model_dump(), **person_changes})})
    return open_referral(cad, REF.sites["abq"], REF.agencies["apd"], T0).model_copy(update={"referral_id": referral_id})


def milestone(referral_id: str, which: Milestone, n: int) -> EngagementRecorded:
    return EngagementRecorded(engagement_id=f"e-{n}", referral_id=referral_id, site_id="abq", milestone=which,
                              occurred_at=T0 + timedelta(days=n), recorded_at=T0 + timedelta(days=n),
                              recorded_by="cm-ana")


def test_a_participant_matches_only_while_inactive_and_open() -> None:
    index = InactiveParticipants()
    index.apply(created(first_name="Zebulon", last_name="Featherstonehaugh", date_of_birth=date(1987, 3, 14)))
    assert index.match("abq", KEY) is None  # active
    index.apply(milestone("r-old", Milestone.inactive, 1))
    assert index.match("abq", KEY) == "r-old"
    assert index.match("santa-fe", KEY) is None  # another site's participant is not theirs to tell
    assert index.match("abq", person_key("ZEBULON", "Featherstone-haugh", date(1987, 3, 14))) == "r-old"
    assert index.match("abq", person_key("Zebulon", "Featherstonehaugh", date(1987, 3, 15))) is None
    index.apply(milestone("r-old", Milestone.contacted, 2))
    assert index.match("abq", KEY) is None  # re-engaged
    index.apply(milestone("r-old", Milestone.inactive, 3))
    index.apply(ReferralStatusChanged(referral_id="r-old", site_id="abq", status=ReferralStatus.completed,
                                      previous_status=ReferralStatus.in_progress, changed_at=T0, changed_by="cm-ana"))
    assert index.match("abq", KEY) is None  # closed
    assert person_key("Zebulon", "Featherstonehaugh", None) is None  # a name alone matches nobody


def test_the_index_matches_on_the_only_values_its_copy_opens() -> None:
    """Its follower opens a person's names and date of birth, and leaves the rest of the referral sealed."""
    data = created(first_name="Zebulon", last_name="Featherstonehaugh", date_of_birth=date(1987, 3, 14)).model_dump()
    without_personal_values(data, ReferralCreated, keep=InactiveParticipants.OPENS)
    opened = ReferralCreated.model_validate(data, context=ERASED_CONTEXT)
    assert opened.officer.callback_phone is None and opened.location.description is None
    index = InactiveParticipants()
    index.apply(opened)
    index.apply(milestone("r-old", Milestone.inactive, 1))
    assert index.match("abq", KEY) == "r-old"


def test_an_erased_participant_is_matched_no_more() -> None:
    index = InactiveParticipants()
    index.apply(created(first_name="Zebulon", last_name="Featherstonehaugh", date_of_birth=date(1987, 3, 14)))
    index.apply(milestone("r-old", Milestone.inactive, 1))
    assert index.match("abq", KEY) == "r-old"
    index.forget("r-old")  # their data keys were destroyed (consent revoked, retention ended)
    assert index.match("abq", KEY) is None
    index.apply(milestone("r-old", Milestone.inactive, 2))  # what comes after names no one it could match
    assert index.match("abq", KEY) is None


async def test_a_cad_referral_naming_an_inactive_participant_tells_their_referral_and_nothing_else() -> None:
    publisher = InMemoryPublisher()
    intake = ReferralIntake(REF, {}, publisher, FakeClock(T0), inactive_participant=lambda site, key: (
        "r-old" if (site, key) == ("abq", person_key(person().first_name, person().last_name,
                                                     person().date_of_birth)) else None))
    new = await intake.on_cad_referral(cad_referral("CAD-NEW", occurred_at=T0))
    [seen] = publisher.events(ParticipantSeen)
    assert seen.referral_id == "r-old" and seen.cad_event_id == "CAD-NEW" and seen.seen_at == T0
    assert [r.key for r in publisher.records if isinstance(r.event, ParticipantSeen)] == ["r-old"]
    assert new is not None and "r-old" not in new.model_dump_json()  # what the CAD side's referral carries
    assert await intake.on_cad_referral(cad_referral("CAD-NEW", occurred_at=T0)) is None  # a retry tells nobody twice
    assert len(publisher.events(ParticipantSeen)) == 1


async def test_an_overdose_response_naming_an_inactive_participant_tells_their_referral_too() -> None:
    from tests.factories import overdose

    od_person = overdose().person
    key = person_key(od_person.first_name, od_person.last_name, od_person.date_of_birth)
    publisher = InMemoryPublisher()
    intake = ReferralIntake(REF, {}, publisher, FakeClock(T0), inactive_participant=lambda site, k: (
        "r-old" if (site, k) == ("abq", key) else None))
    await intake.on_cad_overdose(overdose("EMS-9", occurred_at=T0))
    [seen] = publisher.events(ParticipantSeen)
    assert (seen.referral_id, seen.cad_event_id, seen.location_description) == (
        "r-old", "overdose:EMS-9", "motel parking lot, 4400 Central Ave SE")
    for ignored in (overdose("EMS-10", fatal=True),  # nobody left to re-engage
                    overdose("EMS-11", agency_id="sfpd"),  # an agency that does not serve the site: dead-lettered
                    overdose("EMS-12", person=None)):  # nobody named
        await intake.on_cad_overdose(ignored)
    assert len(publisher.events(ParticipantSeen)) == 1


def seen_event(h: Harness, cad_event_id: str = "CAD-NEW") -> ParticipantSeen:
    return ParticipantSeen(referral_id=h.referral.referral_id, site_id="abq", cad_event_id=cad_event_id,
                           seen_at=h.clock.now(), location_description="Sycamore Underpass by the river")


async def acknowledged(h: Harness, by: str = "cm-ben") -> None:
    await h.notifier.on_referral_event(h.referral)
    await h.notifier.on_page_event(PageAcknowledged(
        page_id=page_id_for(h.referral.referral_id), referral_id=h.referral.referral_id, acknowledged_by=by,
        via=AcknowledgedVia.link, acknowledged_at=h.clock.now()))
    for channel in h.channels.values():
        channel.sent.clear()


async def test_the_case_manager_who_took_the_referral_hears_where_and_when_once() -> None:
    h = Harness()
    await acknowledged(h)
    for _ in range(2):  # a replayed event alerts nobody twice
        await h.notifier.on_referral_event(seen_event(h))
    alerts = [m for ch in h.channels.values() for m in ch.sent]
    assert sorted(m.address for m in alerts) == ["+15055550102", "ben@lead.example.org"]  # cm-ben only
    assert all("Sycamore Underpass" in (m.text + m.body) for m in alerts)
    audits = [a for a in h.publisher.events(DisclosureAudited) if a.record_kind is DisclosedRecord.lead_reengagement]
    assert {a.recipient_id for a in audits} == {"cm-ben"}


async def test_outside_the_persons_consent_nothing_is_sent_and_the_refusal_is_audited() -> None:
    h = Harness()
    with_consent(h, "outreach")
    await acknowledged(h)
    await h.notifier.on_referral_event(seen_event(h))
    assert [m for ch in h.channels.values() for m in ch.sent] == []
    refused = [a for a in h.publisher.events(DisclosureAudited) if a.record_kind is DisclosedRecord.lead_reengagement]
    assert refused and all(a.outcome is DeliveryOutcome.skipped for a in refused)


async def test_a_participant_nobody_took_goes_to_the_sites_program_managers() -> None:
    h = Harness()
    await h.notifier.on_referral_event(h.referral)
    for channel in h.channels.values():
        channel.sent.clear()
    await h.notifier.on_referral_event(seen_event(h))
    assert {m.address for ch in h.channels.values() for m in ch.sent} == {
        REF.case_managers["pm-abq"].address_for(c) for c in REF.case_managers["pm-abq"].channels}
