"""The admin portal in a real browser (Debian's Chromium under Playwright): sign in, every page,
a recipe edited and published, the live telemetry chart moving, and what must be refused or
escaped. Screenshots of each page land in tests/e2e/artifacts/."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx2
from playwright.sync_api import expect

from epicura.ota import keys
from epicura.ota import release_signing as rs
from epicura.realtime import channels
from tests.e2e import EPICURA
from tests.e2e.portal.conftest import ADMIN, COOK, MARKUP, Browser
from tests.support import API, STRONG_PASSWORD, bearer

PAGES = [("dashboard", "/admin/", "Dashboard"), ("users", "/admin/users", "Users"),
         ("appliances", "/admin/appliances", "Appliances"),
         ("recipes", "/admin/recipes", "Recipes"), ("audit", "/admin/audit", "Audit log"),
         ("jobs", "/admin/jobs", "Background jobs")]


def csp_errors(browser: Browser) -> list[str]:
    return [e for e in browser.console_errors
            if "Content Security Policy" in e or "Refused to" in e]


def test_sign_in_and_walk_every_page(browser: Browser) -> None:
    browser.go("/admin/")
    expect(browser.page).to_have_url(re.compile(r"/admin/login\?next="))
    browser.shot("login")
    browser.sign_in()
    expect(browser.page.locator("h1")).to_have_text("Dashboard")
    # The chart is drawn by uPlot from the JSON data block (a canvas, no CDN, no inline JS).
    expect(browser.page.locator("[data-chart] .uplot canvas")).to_have_count(1)
    for name, path, heading in PAGES:
        browser.go(path)
        expect(browser.page.locator("h1")).to_have_text(heading)
        browser.shot(name)
    browser.go("/admin/users?q=portal-e2e-cook")
    browser.page.click("#users a")
    expect(browser.page.locator("#role")).to_have_text("user")
    browser.shot("user")
    browser.go(f"/admin/appliances/{browser.server.seed['appliance_id']}")
    expect(browser.page.locator("h1")).to_contain_text("E2E-000001")
    browser.shot("appliance")
    browser.go(f"/admin/recipes/{browser.server.seed['recipe_id']}")
    browser.shot("recipe")
    assert csp_errors(browser) == []
    # The session cookie is out of the page's reach (HttpOnly).
    assert "epicura_portal=" not in browser.page.evaluate("document.cookie")
    browser.page.click("header form.logout button")
    expect(browser.page).to_have_url(re.compile(r"/admin/login$"))


def test_edit_and_publish_a_recipe(browser: Browser) -> None:
    browser.sign_in()
    page = browser.page
    browser.go(f"/admin/recipes/{browser.server.seed['recipe_id']}")
    # A wrong parameter: the message is shown in that step's box, the form as typed.
    page.fill("input[name='step-1-params']", '{"temperature_c": 250, "duration_s": 60}')
    page.fill("input[name='title']", "Tomato soup, roasted")
    page.click("#save")
    expect(page.locator(".ok")).to_have_text("Saved as a new version.")
    page.click("#publish")
    step = page.locator("#step-1")
    expect(step).to_have_class(re.compile("invalid"))
    expect(step.locator(".step-error")).to_contain_text("180")
    browser.shot("recipe-step-error")
    page.fill("input[name='step-1-params']", '{"temperature_c": "very hot", "duration_s": 60}')
    page.click("#save")
    expect(page.locator("#step-1 .step-error")).to_contain_text("valid number")
    page.fill("input[name='step-1-params']", '{"temperature_c": 120, "duration_s": 60}')
    page.fill("input[name='summary']", "Hotter, roasted")
    page.click("#save")
    expect(page.locator(".ok")).to_have_text("Saved as a new version.")
    page.click("#publish")
    expect(page.locator(".ok")).to_have_text("Published.")
    expect(page.locator("p.muted").first).to_contain_text("published")
    page.click("#versions tbody tr:first-child a")  # the newest version
    expect(page.locator("#diff")).to_contain_text("steps[1].params.temperature_c")
    expect(page.locator("#diff")).to_contain_text("120")
    browser.shot("recipe-diff")
    assert csp_errors(browser) == []


def test_the_live_chart_moves_with_telemetry(browser: Browser) -> None:
    browser.sign_in()
    appliance_id = browser.server.seed["appliance_id"]
    browser.go(f"/admin/appliances/{appliance_id}")
    status = browser.page.locator("#live-status")
    expect(status).to_have_text("Live: waiting for telemetry…")
    for n in range(3):
        sample = {"t": 1_700_000_000_000 + n * 1000, "bowl_temp_c": 40.0 + n}
        browser.server.call(channels.publish(browser.server.runtime, [(
            f"appliance:{appliance_id}",
            {"type": "telemetry", "data": {"appliance_id": appliance_id, "samples": [sample]}},
        )]))
        expect(browser.page.locator("#live-chart")).to_have_attribute("data-points", str(n + 1))
    expect(status).to_have_text("Live: 3 samples")
    browser.shot("appliance-live")


def test_a_visitor_and_a_cook_are_refused(browser: Browser) -> None:
    browser.go("/admin/users")
    expect(browser.page.locator("h1")).to_have_text("Sign in")
    browser.sign_in(COOK)
    expect(browser.page.locator("h1")).to_have_text("Admins only")
    browser.shot("refused-cook")
    browser.go("/admin/")
    expect(browser.page.locator("h1")).to_have_text("Sign in")


def test_a_forged_csrf_token_is_refused(browser: Browser) -> None:
    browser.sign_in()
    browser.go("/admin/jobs")
    status = browser.page.evaluate("""async () => {
        const reply = await fetch('/admin/logout', {method: 'POST',
            headers: {'X-CSRF-Token': 'forged'}});
        return reply.status;
    }""")
    assert status == 403
    browser.go("/admin/")
    expect(browser.page.locator("h1")).to_have_text("Dashboard")  # still signed in


def test_markup_in_text_fields_is_shown_as_text(browser: Browser) -> None:
    browser.sign_in()
    for path in ("/admin/users?q=portal-e2e-cook", "/admin/audit",
                 f"/admin/recipes/{browser.server.seed['recipe_id']}"):
        browser.go(path)
        assert browser.page.evaluate("window.__pwned") is None
    browser.go("/admin/users?q=portal-e2e-cook")
    browser.page.click("#users a")
    expect(browser.page.locator("h1")).to_contain_text("<script>window.__pwned=1</script>")
    browser.shot("escaped-markup")
    assert browser.page.evaluate("window.__pwned") is None


def test_htmx_filters_and_posts_carry_the_csrf_header(browser: Browser) -> None:
    browser.sign_in()
    page = browser.page
    browser.go("/admin/appliances")
    expect(page.locator("#appliances tbody tr")).to_have_count(2)
    page.fill("input[name=hw_revision]", "rev-b")
    with page.expect_request(lambda r: "hw_revision=rev-b" in r.url) as filtered:
        page.click("form.filters button")
    assert filtered.value.headers.get("hx-request") == "true"  # swapped in place by htmx
    expect(page.locator("#appliances tbody tr")).to_have_count(1)
    expect(page.locator("#appliances")).to_contain_text("E2E-000002")
    expect(page).to_have_url(re.compile(r"hw_revision=rev-b"))  # the address follows
    page.click("#appliances a")
    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.click("text=Decommission")
    assert posted.value.headers.get("x-csrf-token")  # htmx sent the session's token
    expect(page.locator("#lifecycle")).to_have_text("decommissioned")
    expect(page.locator(".ok")).to_have_text("The appliance was decommissioned.")
    browser.shot("appliance-decommissioned")
    assert csp_errors(browser) == []


def test_the_live_chart_follows_the_simulator(browser: Browser, tmp_path: Path) -> None:
    """`epicura simulate` as a real process (HTTPS device API) against the served app: its
    appliance appears in the fleet and its 1 Hz telemetry moves the chart."""
    simulator = subprocess.Popen(
        [str(EPICURA), "simulate", "--appliances", "1", "--transport", "https",
         "--api", browser.server.url, "--serial-prefix", "E2ESIM-",
         "--state-file", str(tmp_path / "sim.json"), "--duration", "120",
         "--admin-email", ADMIN, "--admin-password", STRONG_PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        browser.sign_in()
        link = browser.page.locator("#appliances a", has_text="E2ESIM-000001")
        deadline = time.monotonic() + 60
        while not link.count():
            assert time.monotonic() < deadline, "the simulator's appliance never appeared"
            browser.go("/admin/appliances?q=E2ESIM-")
        link.click()
        chart = browser.page.locator("#live-chart")
        expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]"), timeout=30_000)
        expect(chart).to_have_attribute("data-points", re.compile(r"^([3-9]|\d\d)"),
                                        timeout=30_000)
        expect(chart.locator(".uplot canvas")).to_have_count(1)
        browser.shot("appliance-simulator-live")
    finally:
        simulator.terminate()
        simulator.wait(timeout=30)


def test_upload_a_signed_release_and_run_a_rollout(browser: Browser, tmp_path: Path) -> None:
    """The upload form streams a signed release; a rollout is created, started and paused with
    the buttons, and its progress follows a change made elsewhere (the fragment polls)."""
    key = rs.generate_key()

    async def trust() -> None:
        async with browser.server.runtime.db.transaction() as session:
            await keys.add(session, rs.public_key_b64(key), "portal e2e")

    browser.server.call(trust())
    binary = b"portal e2e firmware " * 5000
    manifest = rs.manifest_bytes(rs.describe_binary(binary), version="9.1.0", channel="stable",
                                 hw_revisions=["rev-a"], key=key, min_from_version=None,
                                 notes=f"Release notes {MARKUP}")
    files = {"manifest": manifest, "signature": rs.sign(key, manifest).encode(),
             "binary": binary}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    browser.sign_in()
    page = browser.page
    browser.go("/admin/firmware")
    expect(page.locator("h1")).to_have_text("Firmware")
    for name in files:
        page.set_input_files(f"#upload-form input[name={name}]", str(tmp_path / name))
    browser.shot("firmware-upload")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Firmware 9.1.0")
    expect(page.locator("#status")).to_have_text("ready")
    expect(page.locator("#notes")).to_have_text(f"Release notes {MARKUP}")
    browser.shot("firmware-release")
    page.click("text=Roll it out…")
    expect(page.locator("h1")).to_have_text("Rollouts")
    page.fill("#rollout-form input[name=hw_revisions]", "rev-a")
    browser.shot("rollouts")
    page.click("#rollout-form button[type=submit]")
    expect(page.locator("#state")).to_have_text("draft")
    page.click("#progress form[action$='/start'] button")
    expect(page.locator("#state")).to_have_text("active")
    expect(page.locator("#current-stage")).to_contain_text("1 of 2")
    page.click("#progress form[action$='/pause'] button")
    expect(page.locator("#state")).to_have_text("paused")
    browser.shot("rollout-paused")
    rollout_id = page.url.split("/rollouts/")[1].split("?")[0]
    with httpx2.Client(base_url=browser.server.url, timeout=30) as client:
        login = client.post(f"{API}/auth/login", json={"email": ADMIN,
                                                       "password": STRONG_PASSWORD})
        reply = client.post(f"{API}/admin/rollouts/{rollout_id}/resume",
                            headers=bearer(login.json()))
        assert reply.status_code == 200, reply.text
    # No reload: the progress fragment polls every few seconds.
    expect(page.locator("#state")).to_have_text("active", timeout=15_000)
    browser.shot("rollout-live")
    assert page.evaluate("window.__pwned") is None
    assert csp_errors(browser) == []
