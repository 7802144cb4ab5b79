"""Sample events for tests. Personal values are distinctive so leak tests can search for them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.cad_gateway import events as feed_ev
from services.handle_with_care import events as hwc_ev
from services.kernel import cad as cad_ev
from services.kernel import events as ev
from services.kernel import fhir as fhir_ev
from services.kernel import lead as lead_ev
from services.kernel import push as push_ev
from services.messaging import events as ops_ev
from services.quick_response import events as qrt_ev
from services.self_referral import events as walk_ev
from services.web import events as web_ev

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
# Just after the sample CAD events in config/local/demo happened: the intake refuses event times far from now.
DEMO_NOW = datetime(2026, 11, 21, 5, 35, tzinfo=UTC)


def officer() -> ev.Officer:
    return ev.Officer(name="Officer Quentin Marlowe", badge_number="B-4471", callback_phone="+15055550143")


def person() -> ev.ReferredPerson:
    return ev.ReferredPerson(first_name="Zebulon", last_name="Featherstonehaugh", date_of_birth=date(1987, 3, 14),
                             description="red parka, grey backpack, with a small dog")


def location() -> ev.Location:
    return ev.Location(description="bus shelter at 4th St and Gold Ave SW", latitude=35.0831, longitude=-106.6511)


def child() -> ev.Child:
    return ev.Child(first_name="Philippa", last_name="Quackenbush", date_of_birth=date(2016, 9, 2), grade="4")


def cad_referral(cad_event_id: str = "cad-1001", site_id: str = "abq", **kw) -> cad_ev.CadReferralMade:
    return cad_ev.CadReferralMade(cad_event_id=cad_event_id, agency_id=kw.pop("agency_id", "apd"), site_id=site_id,
                              referral_type=kw.pop("referral_type", ev.ReferralType.arrest_diversion),
                              occurred_at=kw.pop("occurred_at", NOW), officer=officer(), person=person(),
                              location=location(), **kw)


def cad_child(cad_event_id: str = "cad-2001", **kw) -> cad_ev.CadChildEncountered:
    return cad_ev.CadChildEncountered(
        cad_event_id=cad_event_id, agency_id="apd", incident_id=kw.pop("incident_id", "INC-77"),
        encountered_at=kw.pop("encountered_at", NOW), child=kw.pop("child", child()),
        school_id=kw.pop("school_id", "lincoln-es"),
        incident=ev.IncidentDetails(incident_type="DOMESTIC DISTURBANCE WITH WEAPON", address="1313 Mockingbird Lane",
                                    narrative="Officers observed broken glass and a shouting adult",
                                    other_people=["Mortimer Quackenbush"], officer_name="Officer Quentin Marlowe"),
        **kw)


def one_of_each() -> list[ev.Event]:
    """A valid instance of every wire event."""
    return [
        cad_referral(),
        cad_child(),
        lead_ev.ReferralCreated(referral_id="r-1", cad_event_id="cad-1001", agency_id="apd", site_id="abq",
                           referral_type=ev.ReferralType.social_contact, referred_at=NOW, created_at=NOW,
                           intake_due_at=NOW, officer=officer(), person=person(), location=location()),
        lead_ev.ReferralStatusChanged(referral_id="r-1", site_id="abq", status=ev.ReferralStatus.in_progress,
                                 previous_status=ev.ReferralStatus.accepted, reason=ev.StatusReason.other,
                                 changed_at=NOW, changed_by="cm-7"),
        lead_ev.EngagementRecorded(engagement_id="e-1", referral_id="r-1", site_id="abq", milestone=ev.Milestone.contacted,
                              occurred_at=NOW, recorded_at=NOW, recorded_by="cm-7"),
        lead_ev.EngagementWithdrawn(engagement_id="e-1", referral_id="r-1", site_id="abq", milestone=ev.Milestone.contacted,
                               withdrawn_at=NOW, withdrawn_by="cm-7"),
        lead_ev.ReferralNoteWritten(note_id="n-1", referral_id="r-1", site_id="abq", text="Sleeps by the library",
                               written_at=NOW, written_by="cm-7"),
        lead_ev.ReferralFlagged(referral_id="r-1", site_id="abq", flag=ev.ReferralFlag.intake_deadline_near, flagged_at=NOW,
                           due_at=NOW),
        lead_ev.ParticipantSeen(referral_id="r-1", site_id="abq", cad_event_id="cad-1002", seen_at=NOW,
                           location_description="Sycamore Underpass"),
        lead_ev.PageRequested(page_id="p-1", dedup_key="r-1", referral_id="r-1", site_id="abq",
                         referral_type=ev.ReferralType.community, officer_name="Officer Quentin Marlowe",
                         officer_callback_phone="+15055550143", location_description="bus shelter",
                         person_description="red parka", requested_at=NOW),
        lead_ev.PageSent(page_id="p-1", referral_id="r-1", attempt_id="p-1/0/0/cm-7/sms", step_index=0, loop=0, target_id="cm-7",
                    channel=ev.Channel.sms, outcome=ev.DeliveryOutcome.failed, attempt=2, error="HTTP 503", sent_at=NOW),
        lead_ev.PageAcknowledged(page_id="p-1", referral_id="r-1", acknowledged_by="cm-7", via=ev.AcknowledgedVia.link,
                            acknowledged_at=NOW),
        lead_ev.PageEscalated(page_id="p-1", referral_id="r-1", from_step=0, to_step=1, loop=0, escalated_at=NOW),
        lead_ev.PageExhausted(page_id="p-1", referral_id="r-1", site_id="abq", steps=2, loops=2, opened_at=NOW,
                         exhausted_at=NOW),
        hwc_ev.HwcNoticeRequested(notice_id="n-1", child=child(), school_id="lincoln-es", due_at=NOW, requested_at=NOW),
        hwc_ev.HwcNoticeDelivered(notice_id="n-1", attempt_id="n-1/primary/c-1/email", recipient_role=hwc_ev.RecipientRole.primary,
                              contact_id="c-1", channel=ev.Channel.email, outcome=ev.DeliveryOutcome.delivered,
                              attempt=1, delivered_at=NOW),
        hwc_ev.HwcNoticeAcknowledged(notice_id="n-1", contact_id="c-1", via=ev.AcknowledgedVia.link, acknowledged_at=NOW),
        hwc_ev.HwcNoticeEscalated(notice_id="n-1", to_role=hwc_ev.RecipientRole.backup, escalated_at=NOW),
        hwc_ev.HwcNoticeExpired(notice_id="n-1", expired_at=NOW),
        hwc_ev.HwcNoticeRescheduled(notice_id="n-1", due_at=NOW.replace(day=NOW.day + 1), previous_due_at=NOW,
                                reason="closure: snow day", rescheduled_at=NOW),
        hwc_ev.HwcTriageStillUnplaced(cad_event_id="cad-2002", due_at=NOW, reminded_at=NOW),
        hwc_ev.HwcTriageAlerted(cad_event_id="cad-2002", attempt_id="triage/cad-2002/opened/coord/email", contact_id="coord",
                            channel=ev.Channel.email, outcome=ev.DeliveryOutcome.delivered, attempt=1, alerted_at=NOW),
        hwc_ev.HwcTriageOpened(cad_event_id="cad-2002", agency_id="apd", district_id="abq-ps", child=child(),
                           school_name_hint="the school by the park", encountered_at=NOW, opened_at=NOW),
        hwc_ev.HwcTriageResolved(cad_event_id="cad-2002", school_id="lincoln-es", resolved_by="coord-abq", resolved_at=NOW),
        ops_ev.ReferenceDataPublished(section="closures", key="lincoln-es/2026-11-18",
                                  body='{"date": "2026-11-18", "reason": "snow day", "school_id": "lincoln-es"}',
                                  published_at=NOW),
        ops_ev.DisclosureAudited(audit_id="p-1/0/0/cm-7/sms#1", record_kind=ops_ev.DisclosedRecord.lead_page, subject_id="r-1",
                             recipient_id="cm-7", recipient_role="case_manager", channel=ev.Channel.sms,
                             outcome=ev.DeliveryOutcome.delivered, attempt=1, service="notifier", disclosed_at=NOW),
        ops_ev.DeadLetterRecorded(original_topic="handoff.cad.referrals", partition=1, offset=42, original_key=b"k",
                              original_value=b"\x00\x01garbage", original_headers=[ev.Header(key="correlation_id", value=b"c")],
                              error_type="decode", error="not Avro", service="referral-intake", failed_at=NOW),
        ops_ev.SubjectKeyIssued(subject_id="REF-1", key_id="k-1", covers="lead_referral", kek_id="kek-1",
                                wrapped_key=b"\x01wrapped", issued_at=NOW),
        ops_ev.SubjectKeyDestroyed(subject_id="REF-1", key_id="k-1", covers="lead_referral",
                                   reason=ops_ev.ErasureReason.erasure_requested, destroyed_at=NOW),
        ops_ev.ErasureReceipted(receipt_id="er-1", subject_id="REF-1", key_id="k-1", covers="lead_referral",
                                reason=ops_ev.ErasureReason.erasure_requested, requested_by="admin-ana",
                                note="ticket 4711", erased_at=NOW),
        overdose(),
        qrt_ev.FollowUpOpened(task_id="fu-od-1", overdose_event_id="od-1", site_id="abq", kind=qrt_ev.FollowUpKind.outreach,
                          occurred_at=NOW, due_at=NOW, opened_at=NOW, person=overdose().person,
                          location_description="motel parking lot"),
        qrt_ev.FollowUpAttempted(attempt_id="fu-od-1/cm-cruz/k1", task_id="fu-od-1", site_id="abq",
                             outcome=qrt_ev.AttemptOutcome.not_home, recorded_by="cm-cruz", attempted_at=NOW),
        qrt_ev.FollowUpEscalated(task_id="fu-od-1", site_id="abq", due_at=NOW, escalated_at=NOW),
        qrt_ev.FollowUpExpired(task_id="fu-od-1", expired_at=NOW),
        qrt_ev.FollowUpAlertSent(task_id="fu-od-1", attempt_id="fu-od-1/warn/cm-cruz/sms", recipient_id="cm-cruz",
                             channel=ev.Channel.sms, outcome=ev.DeliveryOutcome.delivered, attempt=1, sent_at=NOW),
        qrt_ev.OverdoseReported(report_id="od-abc", site_id="abq", hour=NOW, latitude=35.08, longitude=-106.65, fatal=False,
                            naloxone_given=True, naloxone_doses=2, suspected_substance="fentanyl", age_range="25-34",
                            sex=cad_ev.Sex.male, prior_overdose=True),
        walk_in(),
        walk_ev.WalkInOpened(case_id="wi-w-1", walk_in_event_id="w-1", site_id="abq", station_id="foothills", occurred_at=NOW,
                        opened_at=NOW, paged=["vol-dana", "vol-eli"], accept_by=NOW, placement_due_at=NOW,
                        first_name="Sam"),
        walk_ev.WalkInAccepted(case_id="wi-w-1", volunteer_id="vol-dana", accepted_at=NOW),
        walk_ev.WalkInEscalated(case_id="wi-w-1", site_id="abq", reason=walk_ev.EscalationReason.unanswered, escalated_at=NOW),
        walk_ev.WalkInMilestoneRecorded(milestone_id="wi-w-1/vol-dana/k1", case_id="wi-w-1", site_id="abq",
                                   milestone=walk_ev.WalkInMilestone.volunteer_arrived, recorded_by="vol-dana", at=NOW),
        walk_ev.VolunteerExpenseClaimed(expense_id="wi-w-1/vol-dana/k2", case_id="wi-w-1", site_id="abq",
                                   volunteer_id="vol-dana", kind=walk_ev.ExpenseKind.mileage, miles=12.5, amount_cents=875,
                                   incurred_on=NOW.date(), claimed_at=NOW),
        walk_ev.WalkInMessageSent(case_id="wi-w-1", attempt_id="wi-w-1/page/vol-dana/sms", recipient_id="vol-dana",
                             channel=ev.Channel.sms, outcome=ev.DeliveryOutcome.delivered, attempt=1, sent_at=NOW),
        walk_ev.WalkInExpired(case_id="wi-w-1", expired_at=NOW),
        feed_ev.CadFeedSilent(agency_id="apd", last_event_at=NOW, silent_since=NOW, detected_at=NOW),
        feed_ev.CadFeedResumed(agency_id="apd", silent_since=NOW, resumed_at=NOW),
        feed_ev.FeedAlertSent(agency_id="apd", attempt_id="feed/apd/x/silent/pm-abq/email", recipient_id="pm-abq",
                         channel=ev.Channel.email, outcome=ev.DeliveryOutcome.delivered, attempt=1, sent_at=NOW),
        lead_ev.ReferralLocationUpdated(referral_id="r-1", site_id="abq", cad_event_id="cad-1001", updated_at=NOW,
                                   location_description="library steps, 5th and Copper"),
        lead_ev.ConsentRevoked(referral_id="r-1", site_id="abq", revoked_at=NOW, recorded_by="cm-ana"),
        lead_ev.ReferralRetentionEnded(referral_id="r-1", site_id="abq", ended_at=NOW),
        web_ev.AccessAudited(audit_id="a-1", event_type=web_ev.AccessEvent.signed_in, component="console", user_id="cm-ana",
                         user_kind="staff", success=True, client_address="127.0.0.1", occurred_at=NOW),
        web_ev.ConsoleSessionEnded(session_key="0" * 64, user_id="cm-ana", reason="signed_out", ended_at=NOW,
                               lasts_until=NOW),
        fhir_ev.FhirSubscriptionCreated(subscription_id="sub-1", organization_id="abq-cm",
                                        endpoint="https://cm.example.org/fhir-hook", heartbeat_seconds=300,
                                        created_by="org:abq-cm", created_at=NOW),
        fhir_ev.FhirSubscriptionDeleted(subscription_id="sub-1", organization_id="abq-cm", deleted_by="org:abq-cm",
                                        deleted_at=NOW),
        push_ev.PushSubscribed(subscription_id="d-1", person_id="cm-ana", endpoint="https://push.example.net/s/abc",
                               p256dh="BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                               auth="tBHItJI5svbpez7KI4CCXg", device="Chrome on Android", subscribed_at=NOW),
        push_ev.PushUnsubscribed(subscription_id="d-1", person_id="cm-ana", reason="gone", unsubscribed_at=NOW),
    ]


def walk_in(walk_in_event_id: str = "w-1", **kw) -> cad_ev.CadWalkInReported:
    fields = dict(walk_in_event_id=walk_in_event_id, agency_id="apd", site_id="abq", station_id="foothills",
                  occurred_at=NOW, first_name="Sam")
    return cad_ev.CadWalkInReported(**{**fields, **kw})


def overdose(overdose_event_id: str = "od-1", **kw) -> cad_ev.CadOverdoseResponded:
    """An overdose response as an EMS run reports it (fictitious person and place)."""
    return cad_ev.CadOverdoseResponded(**{
        "overdose_event_id": overdose_event_id, "agency_id": "apd", "site_id": "abq", "occurred_at": NOW,
        "location_description": "motel parking lot, 4400 Central Ave SE", "latitude": 35.081234,
        "longitude": -106.651789, "fatal": False, "naloxone_given": True, "naloxone_doses": 2,
        "suspected_substance": "fentanyl", "age_range": "25-34", "sex": cad_ev.Sex.male, "prior_overdose": True,
        "person": cad_ev.OverdosePerson(first_name="Bartholomew", last_name="Quackenbush", date_of_birth=date(1994, 3, 17),
                                    contact_address="4400 Central Ave SE, Room 12", phone="+15055550177",
                                    address_source=cad_ev.AddressSource.scene),
        **kw})
