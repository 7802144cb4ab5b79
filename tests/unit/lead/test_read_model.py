"""The LEAD read model's caseload index agrees with counting the views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.kernel.events import (
    AcknowledgedVia,
    ReferralStatus,
)
from services.kernel.lead import PageAcknowledged, ReferralStatusChanged
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.adapters.read_model import LeadReadModel
from services.referral_intake.domain.model import open_referral
from tests.factories import cad_referral

REF = load_reference_data(REPO_ROOT / "config" / "local")
T0 = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def counted(model: LeadReadModel, cm: str) -> int:
    return sum(1 for v in model.views.values() if v.is_open and v.acknowledged_by == cm)


def test_caseload_follows_acknowledgements_and_closures() -> None:
    model = LeadReadModel()
    ids = []
    for n in range(4):
        referral = open_referral(cad_referral(f"CAD-CL-{n}"), REF.sites["abq"], REF.agencies["apd"], T0)
        model.apply(referral)
        ids.append(referral.referral_id)
    for n, rid in enumerate(ids[:3]):
        for who in ("cm-ana", "cm-ben"):  # a second acknowledgement does not move the referral
            model.apply(PageAcknowledged(page_id=f"pg-{rid}", referral_id=rid, acknowledged_by=who,
                                         via=AcknowledgedVia.link, acknowledged_at=T0 + timedelta(minutes=n)))
    assert model.caseload("cm-ana") == counted(model, "cm-ana") == 3 and model.caseload("cm-ben") == 0
    model.apply(ReferralStatusChanged(referral_id=ids[0], site_id="abq", status=ReferralStatus.completed,
                                      previous_status=ReferralStatus.in_progress, changed_at=T0, changed_by="cm-ana"))
    assert model.caseload("cm-ana") == counted(model, "cm-ana") == 2


def test_a_missed_handoff_tops_the_outreach_worklist_and_is_counted_per_site_and_week() -> None:
    from zoneinfo import ZoneInfo

    from services.kernel.events import (
        ReferralFlag,
    )
    from services.kernel.lead import PageExhausted, ReferralFlagged
    from services.referral_intake.domain.reports import monthly_report
    from services.referral_intake.domain.views import funnel

    model = LeadReadModel()
    older, missed = (open_referral(cad_referral(f"CAD-W-{n}", occurred_at=T0 + timedelta(hours=n)), REF.sites["abq"],
                                   REF.agencies["apd"], T0 + timedelta(hours=n)) for n in range(2))
    for referral in (older, missed):
        model.apply(referral)
        model.apply(ReferralFlagged(referral_id=referral.referral_id, site_id="abq", flag=ReferralFlag.no_contact,
                                    flagged_at=T0 + timedelta(days=8)))
    assert [v.referral_id for v in model.outreach_worklist("abq")] == [older.referral_id, missed.referral_id]

    model.apply(PageExhausted(page_id=f"pg-{missed.referral_id}", referral_id=missed.referral_id, site_id="abq",
                              steps=2, loops=2, opened_at=missed.created_at, exhausted_at=T0 + timedelta(hours=2)))
    worklist = model.outreach_worklist("abq")
    assert [v.referral_id for v in worklist] == [missed.referral_id, older.referral_id]
    assert worklist[0].flags[0] == "handoff_missed"
    [row] = funnel(list(model.views.values()), "abq")
    assert row.handoffs_missed == 1 and row.referrals == 2
    assert monthly_report(model.views.values(), "abq", "2026-11", ZoneInfo("America/Denver"))[-1].handoffs_missed == 1

    # Once someone takes it, it is an ordinary open referral again (the flag stays, as history).
    model.apply(PageAcknowledged(page_id=f"pg-{missed.referral_id}", referral_id=missed.referral_id,
                                 acknowledged_by="cm-cruz", via=AcknowledgedVia.link, acknowledged_at=T0 + timedelta(hours=3)))
    assert [v.referral_id for v in model.outreach_worklist("abq")] == [older.referral_id, missed.referral_id]
    from services.referral_intake.adapters.read_model import HandoffDetails
    from services.referral_intake.entrypoints.console import card

    taken = card(REF, HandoffDetails(), model.views[missed.referral_id])  # the card says who, not "missed"
    assert "handoff_missed" not in taken["flags"] and taken["taken_by"] == REF.case_managers["cm-cruz"].display_name


def test_a_late_referral_tops_the_outreach_worklist_with_where_the_officer_met_the_person() -> None:
    from services.referral_intake.adapters.read_model import HandoffDetails
    from services.referral_intake.entrypoints.console import card

    model, details = LeadReadModel(), HandoffDetails()
    on_time = open_referral(cad_referral("CAD-ON-TIME", occurred_at=T0), REF.sites["abq"], REF.agencies["apd"], T0)
    late = open_referral(cad_referral("CAD-LATE", occurred_at=T0 - timedelta(hours=5)), REF.sites["abq"],
                         REF.agencies["apd"], T0)
    assert (on_time.late, late.late) == (False, True)
    for referral in (on_time, late):
        model.apply(referral)
        details.apply(referral)
    assert [v.referral_id for v in model.outreach_worklist("abq")] == [late.referral_id]  # nobody was paged for it
    shown = card(REF, details, model.views[late.referral_id])
    assert "late_referral" in shown["flags"] and shown["seen_at"] == "bus shelter at 4th St and Gold Ave SW"

    model.apply(PageAcknowledged(page_id=f"pg-{late.referral_id}", referral_id=late.referral_id,
                                 acknowledged_by="cm-cruz", via=AcknowledgedVia.console,
                                 acknowledged_at=T0 + timedelta(hours=1)))
    assert model.outreach_worklist("abq") == []  # someone took it
    taken = card(REF, details, model.views[late.referral_id])
    assert "late_referral" not in taken["flags"] and taken["taken_by"] == REF.case_managers["cm-cruz"].display_name


def test_a_missed_intake_deadline_replaces_the_near_flag() -> None:
    from services.kernel.events import (
        ReferralFlag,
    )
    from services.kernel.lead import ReferralFlagged

    model = LeadReadModel()
    referral = open_referral(cad_referral("CAD-F-1"), REF.sites["abq"], REF.agencies["apd"], T0)
    model.apply(referral)
    for flag in (ReferralFlag.intake_deadline_near, ReferralFlag.intake_deadline_missed):
        model.apply(ReferralFlagged(referral_id=referral.referral_id, site_id="abq", flag=flag, flagged_at=T0))
    assert model.views[referral.referral_id].flags == ["intake_deadline_missed"]


def test_a_milestone_shows_the_status_it_implies_at_once() -> None:
    from services.kernel.events import Milestone
    from services.kernel.lead import EngagementRecorded

    model = LeadReadModel()
    referral = open_referral(cad_referral("CAD-IMPLIED"), REF.sites["abq"], REF.agencies["apd"], T0)
    model.apply(referral)
    model.apply(EngagementRecorded(engagement_id="e-1", referral_id=referral.referral_id, site_id="abq",
                                   milestone=Milestone.contacted, occurred_at=T0, recorded_at=T0, recorded_by="cm-ana"))
    view = model.views[referral.referral_id]
    assert view.status == "in_progress"  # not "requested" until the tracker's status change comes by
    model.apply(ReferralStatusChanged(referral_id=referral.referral_id, site_id="abq", status=ReferralStatus.in_progress,
                                      previous_status=ReferralStatus.requested, changed_at=T0, changed_by="cm-ana"))
    assert view.status == "in_progress"  # the authority's word, the same
    model.apply(ReferralStatusChanged(referral_id=referral.referral_id, site_id="abq", status=ReferralStatus.completed,
                                      previous_status=ReferralStatus.in_progress, changed_at=T0, changed_by="cm-ana"))
    model.apply(EngagementRecorded(engagement_id="e-2", referral_id=referral.referral_id, site_id="abq",
                                   milestone=Milestone.inactive, occurred_at=T0, recorded_at=T0, recorded_by="cm-ana"))
    assert view.status == "completed"  # a step the tracker refuses on a closed referral moves nothing
