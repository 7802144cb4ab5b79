"""The web console in a real browser: Debian's Chromium driven by Playwright, against the real
broker and the services on a fake clock. Each view is saved as a screenshot at phone (360 px) and
desktop width under docs/console/, which the README links to."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from deploy.local_stack import free_port
from tests.conftest import eventually
from tests.e2e.browser import DESKTOP, PHONE, fits_the_screen, screenshot
from tests.integration.test_hwc_flow import FRIDAY_NIGHT, encounter
from tests.integration.test_lead_flow import on_call, submit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Denver"))
AGENCY = {"Authorization": "Bearer local-dev-token-apd"}

async def sign_in(context, base: str, token: str):
    """By keyboard only: the label finds the field, Enter submits."""
    page = await context.new_page()
    await page.goto(f"{base}/console/login")
    await page.get_by_label("Your access code").fill(token)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    return page


async def test_page_link_to_acknowledgement_to_contact_to_dashboard(system_factory, served, browser) -> None:
    port = free_port()
    system = await system_factory("referral-intake", "notifier", now=NOW, public_base_url=f"http://127.0.0.1:{port}")
    base = await served(system.app, port)
    referral_id = await submit(system, "CAD-CONSOLE-1")
    cm = on_call(system)
    sms = await eventually(lambda: [m for m in system.messages("sms") if m.to == cm.phone])
    link = sms[0].body.split("Ack: ")[1].split()[0]
    await eventually(lambda: referral_id in system.app.state.handoff_details.pages)

    phone = await browser.new_context(viewport=PHONE)
    page = await phone.new_page()
    await page.goto(link)  # opened from the page on the case manager's phone
    assert "bus shelter" in await page.inner_text("main")
    assert await page.get_attribute("a[href^='tel:']", "href") == "tel:+15055550143"
    assert await fits_the_screen(page)
    await screenshot(page, "page-link-phone")
    await page.get_by_role("button", name="Acknowledge").click()
    await page.get_by_text("Escalation has stopped").wait_for()
    await screenshot(page, "page-acknowledged-phone")
    views = system.app.state.read_model.views
    await eventually(lambda: views[referral_id].acknowledged_by == cm.case_manager_id)

    page = await sign_in(phone, base, f"local-dev-token-{cm.case_manager_id}")
    assert page.url.endswith("/console/my-referrals")
    assert await fits_the_screen(page)
    await screenshot(page, "my-referrals-phone")
    await page.get_by_role("link", name="Arrest diversion").first.click()
    await page.get_by_role("button", name="Contacted").wait_for()
    assert await fits_the_screen(page)
    await screenshot(page, "referral-phone")
    await page.get_by_role("button", name="Contacted").click()
    await page.get_by_text("Recorded: contacted.").wait_for()
    # The page that confirms it shows its effect: the status it implies, read from its own write, not a tap behind.
    assert await page.locator(".badge", has_text="in progress").first.is_visible()
    assert f"Contacted by {cm.display_name}" in await page.get_by_test_id("history").inner_text()
    await eventually(lambda: views[referral_id].has("contacted"))
    # A wrong tap is undone: the step stays on the history struck through, and the referral is where it was.
    await page.get_by_role("button", name="Enrolled").click()
    await page.get_by_text("Recorded: enrolled.").wait_for()
    await page.get_by_role("button", name="Undo enrolled").click()
    await page.get_by_text("Undone: the referral is back where that step found it.").wait_for()
    assert f"undone by {cm.display_name}" in await page.get_by_test_id("history").inner_text()
    assert await page.locator("[data-testid=history] del", has_text="Enrolled").is_visible()
    await eventually(lambda: not views[referral_id].has("enrolled"))
    # A note, read by its author and the case manager who took the referral (here the same), sealed on the topic.
    await page.get_by_label("Add a note").fill("Prefers mornings; meets at the library")
    await page.get_by_role("button", name="Save the note").click()
    await page.get_by_text("Note saved.").wait_for()
    assert "Prefers mornings" in await page.get_by_test_id("notes").inner_text()
    assert await fits_the_screen(page)
    await screenshot(page, "referral-undo-and-note-phone")

    desktop = await browser.new_context(viewport=DESKTOP)
    dashboard = await sign_in(desktop, base, "local-dev-token-pm-abq")
    assert dashboard.url.endswith("/console/dashboard")
    # Live: the figures refresh on their own; the contact shows without reloading the page.
    await dashboard.get_by_test_id("contacted").filter(has_text="Contacted, all to date: 1 of 1").wait_for(timeout=15000)
    await screenshot(dashboard, "dashboard-desktop")
    month = NOW.strftime("%Y-%m")
    csv = await (await desktop.request.get(f"{base}/console/reports/abq/{month}.csv")).text()
    assert csv.splitlines()[0].startswith("month,site_id,referral_type,referrals,contacted")
    assert csv.splitlines()[-1].startswith(f"{month},abq,all,1,1,")
    for personal in ("+15055550143", "Example", "bus shelter", referral_id):
        assert personal not in csv
    report = await desktop.new_page()
    await report.goto(f"{base}/console/reports/abq/{month}")
    await screenshot(report, "monthly-report-desktop")
    # Printed on Letter portrait (8.5 in at 96 px, less margins), the whole report fits the page's width, every
    # measure in words, none cut off; the PDF Chromium makes of it is whole too.
    letter = await (await browser.new_context(viewport={"width": 720, "height": 960})).new_page()
    await letter.context.add_cookies(await desktop.cookies())
    await letter.goto(f"{base}/console/reports/abq/{month}")
    await letter.emulate_media(media="print")
    assert await fits_the_screen(letter)
    for label in ("Warm handoffs missed (nobody acknowledged)", "Median minutes from the CAD event to the page",
                  "Engagement target (75%)"):
        assert await letter.get_by_role("rowheader", name=label).is_visible(), label
    assert (await letter.pdf(format="Letter"))[:4] == b"%PDF"
    phone_dashboard = await sign_in(await browser.new_context(viewport=PHONE), base, "local-dev-token-pm-abq")
    assert await fits_the_screen(phone_dashboard)
    await screenshot(phone_dashboard, "dashboard-phone")

    # A program manager sees figures, not people: a referral's page is not for that role.
    refused = await dashboard.goto(f"{base}/console/referrals/{referral_id}")
    assert refused.status == 403


async def test_notice_link_acknowledged_and_another_schools_notice_refused(system_factory, served, browser) -> None:
    port = free_port()
    system = await system_factory("handle-with-care", now=FRIDAY_NIGHT + timedelta(minutes=2),
                                  public_base_url=f"http://127.0.0.1:{port}")
    base = await served(system.app, port)
    resp = await system.http.post("/v1/child-encounters", json=encounter("CAD-CONSOLE-C1"), headers=AGENCY)
    assert resp.status_code == 202
    unplaced = {**encounter("CAD-CONSOLE-C2", first_name="Ottoline"), "school_id": None,
                "school_name_hint": "the school by the river"}
    assert (await system.http.post("/v1/child-encounters", json=unplaced, headers=AGENCY)).status_code == 202
    mail = await eventually(lambda: [m for m in system.messages("email") if m.to == "counselor@lincoln.example.org"])
    link = mail[0].body.split("Please acknowledge: ")[1].split()[0]
    hwc_model = system.app.state.hwc_model
    [notice_id] = await eventually(lambda: list(hwc_model.requests))

    phone = await browser.new_context(viewport=PHONE)
    page = await phone.new_page()
    await page.goto(link)  # the link names the child to nobody who is not signed in as the school: it may be forwarded
    text = await page.inner_text("main")
    assert "Philippa" not in text and "Lincoln Elementary" in text and "Sign in to see who" in text
    await screenshot(page, "notice-link-forwarded-phone")
    await page.get_by_role("link", name="Sign in to see who").click()
    await page.get_by_label("Your access code").fill("local-dev-token-lincoln-counselor")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url.endswith(f"/console/notices/{notice_id}")  # back on this notice, signed in as the school
    assert "Philippa Quackenbush" in await page.inner_text("main")
    await page.goto(link)  # the link again, now from the school's own signed-in browser
    text = await page.inner_text("main")
    assert "Philippa Quackenbush" in text and "Lincoln Elementary" in text
    for incident in ("DOMESTIC", "Mockingbird", "broken glass", "Marlowe", "Mortimer", "apd"):
        assert incident not in text
    assert await fits_the_screen(page)
    await screenshot(page, "notice-link-phone")
    await page.get_by_role("button", name="Acknowledge").click()
    await page.get_by_text("recorded as received").wait_for()
    await eventually(lambda: hwc_model.notices[notice_id].acknowledged_at)

    counselor = await sign_in(phone, base, "local-dev-token-lincoln-counselor")
    assert counselor.url.endswith("/console/notices") and "acknowledged" in await counselor.inner_text("main")
    await screenshot(counselor, "school-notices-phone")

    other_school = await sign_in(await browser.new_context(viewport=PHONE), base, "local-dev-token-sunrise-director")
    refused = await other_school.goto(f"{base}/console/notices/{notice_id}")
    assert refused.status == 403
    text = await other_school.inner_text("main")
    assert "another school" in text and "Philippa" not in text
    await screenshot(other_school, "other-school-refused-phone")
    # The link forwarded to another school's director after the acknowledgement: which school acknowledged, no child.
    forwarded = await other_school.goto(link)
    assert forwarded.status == 200
    text = await other_school.inner_text("main")
    assert "Already acknowledged by Lincoln Elementary" in text and "Philippa" not in text
    assert await other_school.locator("form[method=post]").count() == 0
    await screenshot(other_school, "notice-link-after-acknowledgement-phone")
    forged = await other_school.request.post(f"{base}/console/notices/{notice_id}/acknowledge",
                                             form={"csrf_token": "x"})
    assert forged.status == 403

    coordinator = await sign_in(await browser.new_context(viewport=DESKTOP), base, "local-dev-token-coord-abq")
    await eventually(lambda: hwc_model.open_triage("abq-ps"))
    await coordinator.reload()
    assert "Ottoline" in await coordinator.inner_text("main")
    await screenshot(coordinator, "triage-desktop")
    await coordinator.get_by_label("Place at").select_option("lincoln-es")
    await coordinator.get_by_role("button", name="Send the notice to this school").click()
    await coordinator.get_by_text("Placed").wait_for()
    # The notice of the child just placed (the coordinator's triage alert named nobody).
    await eventually(lambda: [m for m in system.messages("email") if "Ottoline" in m.body])
    alerts = [m for m in system.messages("email") if m.to == "hwc-coordinator@district.example.org"]
    assert alerts and not [m for m in alerts if "Ottoline" in m.body]


async def test_the_quick_response_list_on_a_phone_takes_an_attempt_in_one_tap(system_factory, served, browser) -> None:
    from tests.factories import overdose

    port = free_port()
    system = await system_factory("quick-response", now=NOW, public_base_url=f"http://127.0.0.1:{port}")
    base = await served(system.app, port)
    for event_id, hours_ago, fatal in (("EMS-CONSOLE-1", 5, False), ("EMS-CONSOLE-2", 30, False),
                                       ("EMS-CONSOLE-3", 2, True)):
        body = overdose(event_id, occurred_at=NOW - timedelta(hours=hours_ago), fatal=fatal).model_dump(mode="json")
        assert (await system.http.post("/v1/overdoses", json=body, headers=AGENCY)).status_code == 202
    model = system.app.state.qrt_model
    await eventually(lambda: len(model.open_list("abq")) == 3)

    team = await sign_in(await browser.new_context(viewport=PHONE), base, "local-dev-token-cm-cruz")
    await team.goto(f"{base}/console/qrt")
    # A death changes the follow-up: the card is for the family, in its words, with no treatment step.
    family = team.get_by_test_id("follow-up").filter(has_text="The family of")
    assert await family.count() == 1
    assert "died of an overdose" in await family.inner_text()
    assert await family.get_by_role("button", name="Family supported, resources given").is_visible()
    assert await family.get_by_role("button", name="Referred to treatment").count() == 0
    await family.scroll_into_view_if_needed()
    await screenshot(team, "qrt-family-card-phone")
    cards = team.get_by_test_id("follow-up").filter(has_not_text="The family of")
    assert await cards.count() == 2
    first = await cards.nth(0).inner_text()
    assert "Bartholomew Quackenbush" in first and "4400 Central Ave SE" in first  # the one due first on top
    assert await fits_the_screen(team)
    await screenshot(team, "qrt-list-phone")
    await cards.nth(0).get_by_role("button", name="Not home").click()
    await team.get_by_text("Recorded: Not home.").wait_for()
    await eventually(lambda: [v for v in model.open_list("abq") if v.outcomes])
    # The page that confirms it shows the attempt, with when and by whom.
    assert "Not home, Fri 20 Nov 10:00 MST by Cruz M. (outreach)" in await team.get_by_test_id("attempts").first.inner_text()
    desktop = await sign_in(await browser.new_context(viewport=DESKTOP), base, "local-dev-token-cm-cruz")
    await desktop.goto(f"{base}/console/qrt")
    assert "3 follow-ups" in await desktop.get_by_test_id("qrt-funnel").first.inner_text()
    await screenshot(desktop, "qrt-list-desktop")


async def test_a_volunteer_accepts_a_walk_in_on_a_phone_and_the_coordinator_sees_it(system_factory, served,
                                                                                   browser) -> None:
    import re

    from tests.factories import walk_in

    port = free_port()
    system = await system_factory("self-referral", now=NOW, public_base_url=f"http://127.0.0.1:{port}")
    base = await served(system.app, port)
    for event_id, minutes_ago in (("STN-CONSOLE-1", 4), ("STN-CONSOLE-2", 25)):
        body = walk_in(event_id, occurred_at=NOW - timedelta(minutes=minutes_ago)).model_dump(mode="json")
        assert (await system.http.post("/v1/walk-ins", json=body, headers=AGENCY)).status_code == 202
    pages = await eventually(lambda: [m for m in system.messages("sms") if m.to == "+15055550201"] or None)
    links = [re.search(r"(http://127\.0\.0\.1:\d+/walk-in/\S+)", m.body).group(1) for m in pages]  # Dana's
    model = system.app.state.walk_in_model
    await eventually(lambda: len(model.open_list("abq")) == 2)

    dana = await (await browser.new_context(viewport=PHONE)).new_page()
    await dana.goto(links[0])  # the page in her text message: no sign-in
    await dana.get_by_role("button", name="I can go").wait_for()
    assert "Foothills Area Command" in await dana.content() and "Sam" not in await dana.content()
    assert await fits_the_screen(dana)
    await screenshot(dana, "walk-in-volunteer-phone")
    await dana.get_by_role("button", name="I can go").click()
    await dana.get_by_test_id("first-name").wait_for(timeout=15000)  # refreshed once the acceptance is recorded
    await dana.get_by_role("button", name="I'm here").click()
    await dana.get_by_text("Recorded.").wait_for()
    # The step shows once the API's read model has the event (a moment after the redirect): reload then.
    await eventually(lambda: any(v.reached for v in model.open_list("abq")))
    await dana.reload()
    assert "I'm here" in await dana.get_by_test_id("done-so-far").inner_text()
    assert await fits_the_screen(dana)
    await screenshot(dana, "walk-in-volunteer-accepted-phone")
    # A number she cannot give as one comes back beside its field, what she typed kept; a decimal comma is a number.
    await dana.get_by_label("Miles (mileage)").fill("lots")
    await dana.get_by_role("button", name="Claim").click()
    await dana.get_by_test_id("miles-error").wait_for()
    assert "for example 12.5" in await dana.get_by_test_id("miles-error").inner_text()
    assert await dana.get_by_label("Miles (mileage)").input_value() == "lots"
    assert await fits_the_screen(dana)
    await screenshot(dana, "walk-in-expense-refused-phone")
    await dana.get_by_label("Miles (mileage)").fill("24,5")
    await dana.get_by_role("button", name="Claim").click()
    await dana.get_by_text("Expense recorded.").wait_for()

    coordinator = await sign_in(await browser.new_context(viewport=DESKTOP), base, "local-dev-token-cm-cruz")
    await coordinator.goto(f"{base}/console/walk-ins")
    cards = coordinator.get_by_test_id("walk-in")
    await eventually(lambda: len([v for v in model.open_list("abq") if v.accepted]) == 1)
    await coordinator.reload()
    assert await cards.count() == 2
    assert "nobody has accepted" in await cards.nth(0).inner_text()  # the one nobody took is on top
    assert "Dana K." in await cards.nth(1).inner_text() and "Sam" not in await coordinator.content()
    await screenshot(coordinator, "walk-ins-desktop")
    phone = await sign_in(await browser.new_context(viewport=PHONE), base, "local-dev-token-cm-cruz")
    await phone.goto(f"{base}/console/walk-ins")
    assert await fits_the_screen(phone)
    await screenshot(phone, "walk-ins-phone")


async def test_the_officer_follows_the_handoff_on_a_phone_and_a_late_referral_tops_the_worklist(
        system_factory, served, browser) -> None:
    import re

    from tests.integration.test_lead_flow import referral_body

    port = free_port()
    system = await system_factory("referral-intake", "notifier", now=NOW, public_base_url=f"http://127.0.0.1:{port}")
    base = await served(system.app, port)
    officer_phone = "+15055550143"
    referral_id = await submit(system, "CAD-OFFICER-1")
    await eventually(lambda: [m for m in system.messages("sms") if m.to == on_call(system).phone])
    system.clock.advance(minutes=5)  # the on-call does not answer: the first escalation
    told = await eventually(lambda: [m for m in system.messages("sms") if m.to == officer_phone])
    link = re.search(r"Follow it: (\S+)", told[0].body).group(1)
    views = system.app.state.read_model.views
    await eventually(lambda: views[referral_id].tried_now == ["cm-cruz"])

    officer = await (await browser.new_context(viewport=PHONE)).new_page()
    await officer.goto(link)  # from the SMS, no sign-in: the referral's handoff, nothing about the person
    main = await officer.inner_text("main")
    assert "The on-call has not answered. Now paging Cruz M. (outreach)." in main
    for personal in ("Example", "bus shelter", "1990"):
        assert personal not in await officer.content()
    assert await fits_the_screen(officer)
    await screenshot(officer, "officer-view-phone")

    cruz = await eventually(lambda: [m for m in system.messages("sms") if m.to == system.reference.case_managers[
        "cm-cruz"].phone])
    taken = cruz[0].body.split("Ack: ")[1].split()[0]
    assert (await system.http.post(taken.replace(f"http://127.0.0.1:{port}", ""))).status_code == 200
    await eventually(lambda: views[referral_id].acknowledged_by == "cm-cruz")
    await officer.get_by_role("link", name="Refresh").click()
    await officer.get_by_text("Cruz M. (outreach) took your referral").wait_for()
    await screenshot(officer, "officer-view-taken-phone")

    # Three hours after the officer met the person it is no warm handoff: nobody is woken, the officer hears so, and
    # the referral tops the outreach worklist with where the officer met the person.
    late = {**referral_body("CAD-LATE-1"), "occurred_at": (NOW - timedelta(hours=3)).isoformat()}
    resp = await system.http.post("/v1/referrals", json=late, headers={"Authorization": "Bearer local-dev-token-apd"})
    assert resp.status_code == 202, resp.text
    late_id = resp.json()["referral_id"]
    told = await eventually(lambda: [m for m in system.messages("sms") if m.to == officer_phone and "window" in m.body])
    await officer.goto(re.search(r"Follow it: (\S+)", told[0].body).group(1))
    assert "after the 120-minute warm-handoff window, so nobody was paged" in await officer.inner_text("main")
    await eventually(lambda: late_id in views and views[late_id].late)
    outreach = await sign_in(await browser.new_context(viewport=PHONE), base, "local-dev-token-cm-cruz")
    await outreach.goto(f"{base}/console/worklist")
    first = await outreach.locator("li.card").first.inner_text()
    assert "late" in first.lower() and "bus shelter" in first
    assert await fits_the_screen(outreach)
    await screenshot(outreach, "worklist-late-referral-phone")
