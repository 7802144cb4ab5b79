"""Push on the real broker: a case manager turns push on for a device in the console (the device here is a
subscription at the dev inbox's push service), the notifier worker learns of it from the push-subscriptions topic,
and a referral's page reaches the device as real Web Push (encrypted, VAPID-signed) that the dev inbox decrypts.
Turning push off drops the device everywhere and destroys its data key, with a receipt: its sealed endpoint and
keys cannot be read from any copy of the topic from then on."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from services.delivery.channels import new_vapid_key
from services.kernel.events import Channel
from services.kernel.push import device_key
from services.messaging.events import SubjectKeyDestroyed
from services.notifier.domain.schedule import on_call_at
from tests.conftest import eventually
from tests.integration.test_lead_flow import NOW, on_call, submit

pytestmark = pytest.mark.integration


async def test_a_page_reaches_a_device_with_push_on_and_turning_it_off_erases_it(system_factory) -> None:
    def on_call_has_push(reference):
        site = reference.sites["abq"]
        cm_id = on_call_at(site.on_call, site.zone, NOW)
        cm = reference.case_managers[cm_id].model_copy(update={"channels": (Channel.push, Channel.sms)})
        return reference.model_copy(update={"case_managers": {**reference.case_managers, cm_id: cm}})

    system = await system_factory("referral-intake", "notifier", now=NOW, console_access_codes=True,
                                  push_vapid_private_key=SecretStr(new_vapid_key()), push_loopback_endpoints=True,
                                  reference_changes=on_call_has_push)
    cm = on_call(system)

    http = system.http
    await http.post("/console/login", data={"token": f"local-dev-token-{cm.case_manager_id}"})
    csrf = (await http.get("/console/push")).text.split('data-csrf="')[1].split('"')[0]
    headers = {"Origin": "http://handoff.test", "X-CSRF-Token": csrf, "Accept": "application/json"}
    async with httpx.AsyncClient() as phone:  # the phone's browser subscribes at its push service
        subscription = (await phone.post(f"{system.inbox.base_url}/push/subscriptions")).json()
    made = await http.post("/console/push/subscriptions", json=subscription, headers=headers)
    assert made.status_code == 201, made.text
    subscription_id = made.json()["subscription_id"]
    notifier = system.apps["notifier"].services["notifier"]
    await eventually(lambda: notifier.push_devices.of(cm.case_manager_id))

    await submit(system, "CAD-PUSH-1")
    [pushed] = await eventually(lambda: system.inbox.inbox.of("push"))
    assert pushed.headers["Urgency"] == "high" and "bus shelter" in pushed.body and "Example" not in pushed.body

    gone = await http.delete(f"/console/push/subscriptions/{subscription_id}", headers=headers)
    assert gone.status_code == 204
    await eventually(lambda: not notifier.push_devices.of(cm.case_manager_id))
    subject = device_key(cm.case_manager_id, subscription_id)
    keys = system.app.state.keys
    await eventually(lambda: keys.keys_of(subject) and all(isinstance(r, SubjectKeyDestroyed)
                                                            for r in keys.keys_of(subject)))
