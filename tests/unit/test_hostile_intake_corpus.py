"""Every case of the hostile-intake corpus gets the answer it names, never a 500, and nothing that
was refused is published."""

from __future__ import annotations

from collections import Counter

import httpx
from pydantic import SecretStr

from services import runtime
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from tests.corpus import intake_cases
from tests.factories import DEMO_NOW

CASES = intake_cases()


def test_the_corpus_is_large_enough_for_both_intakes() -> None:
    per_intake = Counter(case.intake for case in CASES)
    assert per_intake["referrals"] >= 50 and per_intake["child-encounters"] >= 50 and len(CASES) >= 100
    assert {c.expect for c in CASES} >= {202, 400, 403, 413, 415, 422}


async def test_every_case_gets_its_answer_and_only_accepted_ones_are_published(memory_settings) -> None:
    publisher = InMemoryPublisher()
    settings = memory_settings.model_copy(update={"link_signing_key": SecretStr("k")})
    app = runtime.build_http_app(settings, publisher=publisher, clock=FakeClock(DEMO_NOW), follow_topics=False)
    wrong = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for case in CASES:
            resp = await client.post(case.path, content=case.body, headers=case.headers("local-dev-token-apd"))
            if resp.status_code != case.expect:
                wrong.append((case.name, resp.status_code, resp.text[:200]))
            elif resp.status_code != 202:
                assert resp.json()["errors"][0]["field"], case.name  # every refusal names what is wrong
    assert wrong == [], "\n".join(map(str, wrong))
    assert len(publisher.records) == sum(case.expect == 202 for case in CASES)
