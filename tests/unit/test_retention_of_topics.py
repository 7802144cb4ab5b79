"""No topic keeps children's data longer than ``child_data_retention_days``: the encounters CAD sends, the
notices and triage, and the dead letters (a child's encounter or notice may be one of them)."""

from __future__ import annotations

from services.handle_with_care.topics import HWC_NOTICES, HWC_TRIAGE
from services.kernel.topics import AUDIT, CAD_CHILD_ENCOUNTERS, DAY_MS, DEAD_LETTER, retention_overrides
from services.runtime import TOPICS


def days(overrides: dict, spec) -> float:
    return int(overrides[spec.name]["retention.ms"]) / DAY_MS


def test_childrens_data_is_kept_no_longer_than_its_retention_and_no_longer_than_its_topic_says() -> None:
    assert {CAD_CHILD_ENCOUNTERS.name, HWC_NOTICES.name, HWC_TRIAGE.name, DEAD_LETTER.name} <= {
        spec.name for spec in TOPICS if spec.child_data}
    short = retention_overrides(audit_days=400, child_data_days=3)
    assert [days(short, s) for s in (CAD_CHILD_ENCOUNTERS, HWC_NOTICES, HWC_TRIAGE, DEAD_LETTER)] == [3, 3, 3, 3]
    long = retention_overrides(audit_days=400, child_data_days=60)
    assert [days(long, s) for s in (CAD_CHILD_ENCOUNTERS, HWC_NOTICES, HWC_TRIAGE, DEAD_LETTER)] == [7, 60, 30, 30]
    assert days(long, AUDIT) == 400
