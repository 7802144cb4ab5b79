from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.kernel.errors import Rejected
from services.kernel.events import ReferralType
from services.platform.reference_files import load_reference_data
from services.platform.settings import REPO_ROOT
from services.referral_intake.domain.model import intake_due_at, open_referral, referral_id_for
from tests.factories import cad_referral

REF = load_reference_data(REPO_ROOT / "config" / "local")
NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)


def test_referral_id_is_deterministic_and_scoped() -> None:
    assert referral_id_for("abq", "apd", "cad-1") == referral_id_for("abq", "apd", "cad-1")
    assert referral_id_for("abq", "apd", "cad-1") != referral_id_for("abq", "bcso", "cad-1")


def test_intake_deadline_is_end_of_local_day_n_days_later() -> None:
    site = REF.sites["santa-fe"]  # 7 days, America/Denver
    # 2026-11-20 23:30 local (MST = UTC-7) is 2026-11-21 06:30 UTC.
    due = intake_due_at(datetime(2026, 11, 21, 6, 30, tzinfo=UTC), site)
    local = due.astimezone(site.zone)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-11-27", 23, 59)


def test_open_referral_carries_what_the_page_needs() -> None:
    created = open_referral(cad_referral(), REF.sites["abq"], REF.agencies["apd"], NOW)
    assert created.referral_id == referral_id_for("abq", "apd", "cad-1001")
    assert created.created_at == NOW
    assert created.officer.callback_phone == "+15055550143"


@pytest.mark.parametrize("kwargs, field", [
    ({"site_id": "nowhere"}, "site_id"),
    ({"agency_id": "unknown-agency"}, "agency_id"),
])
def test_unknown_site_or_agency_is_rejected(kwargs, field) -> None:
    cad = cad_referral(**kwargs)
    with pytest.raises(Rejected) as err:
        open_referral(cad, REF.site(cad.site_id), REF.agencies.get(cad.agency_id), NOW)
    assert err.value.field == field


def test_agency_may_not_refer_to_another_site() -> None:
    with pytest.raises(Rejected, match="may not submit for site 'santa-fe'"):
        open_referral(cad_referral(site_id="santa-fe"), REF.sites["santa-fe"], REF.agencies["apd"], NOW)


def test_site_refuses_routes_it_does_not_accept() -> None:
    cad = cad_referral(site_id="santa-fe", agency_id="sfpd", referral_type=ReferralType.community)
    with pytest.raises(Rejected) as err:
        open_referral(cad, REF.sites["santa-fe"], REF.agencies["sfpd"], NOW)
    assert err.value.field == "referral_type"


async def test_the_worker_refuses_a_reused_cad_event_id_with_another_body_and_a_time_far_from_now() -> None:
    from datetime import timedelta

    from services.kernel.clock import FakeClock
    from services.kernel.events import (
        Location,
    )
    from services.kernel.lead import ReferralLocationUpdated
    from services.messaging.kafka import InMemoryPublisher
    from services.referral_intake.service import ReferralIntake

    publisher = InMemoryPublisher()
    intake = ReferralIntake(REF, {}, publisher, FakeClock(NOW))
    assert await intake.on_cad_referral(cad_referral("CAD-9", occurred_at=NOW)) is not None
    assert await intake.on_cad_referral(cad_referral("CAD-9", occurred_at=NOW)) is None  # a retry: nothing new
    moved = cad_referral("CAD-9", occurred_at=NOW).model_copy(update={"location": Location(description="elsewhere")})
    for _ in range(2):  # CAD updated the call: the person moved (an update, told once; then a retry)
        assert await intake.on_cad_referral(moved) is None
    [update] = publisher.events(ReferralLocationUpdated)
    assert update.location_description == "elsewhere" and update.cad_event_id == "CAD-9"
    changed = moved.model_copy(update={"person": moved.person.model_copy(update={"first_name": "Another"})})
    with pytest.raises(Rejected, match="cad_event_id"):  # someone else under the same id: not an update
        await intake.on_cad_referral(changed)
    with pytest.raises(Rejected, match="occurred_at: more than 30 days before now"):
        await intake.on_cad_referral(cad_referral("CAD-10", occurred_at=NOW - timedelta(days=31)))
    with pytest.raises(Rejected, match="occurred_at: more than 10 minutes after now"):
        await intake.on_cad_referral(cad_referral("CAD-11", occurred_at=NOW + timedelta(minutes=11)))
    assert len(publisher.records) == 2  # the referral and the one update
