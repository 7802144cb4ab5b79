"""What happens to a CAD referral: dedup by its CAD event id, open the referral, publish it."""

from __future__ import annotations

from services.core.clock import Clock
from services.core.events import CadReferralMade, ReferralCreated, ReferralStatus
from services.core.kafka import Publisher
from services.core.logs import get_logger
from services.core.reference import ReferenceData
from services.core.store import KeyValueStore
from services.core.topics import REFERRALS
from services.referral_intake.domain.model import open_referral, referral_id_for

log = get_logger(__name__)


class ReferralIntake:
    def __init__(self, reference: ReferenceData, referrals: KeyValueStore, publisher: Publisher, clock: Clock) -> None:
        self.reference = reference
        self.referrals = referrals  # referral_id -> {"status", "site_id", "created_at"}
        self.publisher = publisher
        self.clock = clock

    async def on_cad_referral(self, cad: CadReferralMade) -> ReferralCreated | None:
        """Open a referral; ``None`` when this CAD event already opened one (retry or replay)."""
        referral_id = referral_id_for(cad.site_id, cad.agency_id, cad.cad_event_id)
        if referral_id in self.referrals:
            log.info("referral_duplicate_ignored", referral_id=referral_id, cad_event_id=cad.cad_event_id)
            return None
        created = open_referral(cad, self.reference.site(cad.site_id), self.reference.agencies.get(cad.agency_id),
                                self.clock.now())
        # Publish before remembering: a crash in between replays into a duplicate that downstream
        # dedups by referral id, never into a referral that was remembered but not published.
        await self.publisher.publish(REFERRALS, referral_id, created)
        self.referrals[referral_id] = {"status": ReferralStatus.requested.value, "site_id": cad.site_id,
                                       "created_at": created.created_at.isoformat()}
        log.info("referral_opened", referral_id=referral_id, site_id=cad.site_id,
                 referral_type=cad.referral_type.value)
        return created
