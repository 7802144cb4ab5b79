"""Property-based: whatever a CAD system POSTs, the intake never answers 500, and every rejection
names a field and a reason without echoing the value."""

from __future__ import annotations

import enum as enum_module
import json
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services import runtime
from services.kernel import events as kernel_events
from services.kernel.clock import FakeClock
from services.messaging.kafka import InMemoryPublisher
from services.platform.settings import REPO_ROOT, Settings
from tests.factories import DEMO_NOW

VALID = json.loads((REPO_ROOT / "config" / "local" / "demo" / "referral.json").read_text())
ENCOUNTER = json.loads((REPO_ROOT / "config" / "local" / "demo" / "child-encounter.json").read_text())
APD = {"Authorization": "Bearer local-dev-token-apd"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def mutated(base: dict) -> st.SearchStrategy[dict]:
    """The valid body with some fields replaced, removed or added."""
    keys = st.sampled_from(sorted(base))
    return st.builds(
        lambda replace, remove, extra: {**{k: v for k, v in base.items() if k not in remove}, **replace, **extra},
        st.dictionaries(keys, json_values, max_size=3), st.sets(keys, max_size=2),
        st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=1))


@pytest.fixture(scope="module")
def app():
    s = Settings(schema_registry_url="memory://", link_signing_key=SecretStr("k"))
    return runtime.build_http_app(s, publisher=InMemoryPublisher(), clock=FakeClock(DEMO_NOW), follow_topics=False)


async def post(app, path: str, body) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post(path, content=json.dumps(body), headers={**APD, "Content-Type": "application/json"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutated(VALID))
async def test_referral_intake_never_500s_and_names_fields(app, body) -> None:
    await check(await post(app, "/v1/referrals", body), body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutated(ENCOUNTER))
async def test_encounter_intake_never_500s_and_names_fields(app, body) -> None:
    await check(await post(app, "/v1/child-encounters", body), body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
async def test_any_json_at_all(app, body) -> None:
    await check(await post(app, "/v1/referrals", body), body)


# Handoff's own words a reason may quote: the values an enum allows ("'social_contact', 'community' or ..."). A
# submitted fragment of one ("soci") is found inside them without the reason echoing anything that was sent.
VOCABULARY = {member.value for enum in vars(kernel_events).values()
              if isinstance(enum, type) and issubclass(enum, enum_module.Enum) for member in enum}


def _without_vocabulary(text: str) -> str:
    return re.sub(r"'([^']*)'", lambda m: "" if m.group(1) in VOCABULARY else m.group(0), text)


async def check(resp: httpx.Response, body) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        errors = resp.json()["errors"]
        assert errors and all(e["field"] and e["reason"] for e in errors)
        reasons = _without_vocabulary(" ".join(e["reason"] for e in errors))
        for value in _submitted_values(body):
            if len(value) >= 4 and not value.isspace():
                assert value not in reasons, f"reason echoes a submitted value: {value!r}"


def _submitted_values(value) -> list[str]:
    """Every string value in the body (keys are field names, which errors are meant to name)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _submitted_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in _submitted_values(v)]
    return []
