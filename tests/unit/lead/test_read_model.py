"""The LEAD read model's caseload index agrees with counting the views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.core.events import AcknowledgedVia, PageAcknowledged, ReferralStatus, ReferralStatusChanged
from services.core.reference import load_reference_data
from services.core.settings import REPO_ROOT
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
