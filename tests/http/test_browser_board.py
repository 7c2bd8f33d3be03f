"""The screens (SPEC section 5) in a real Chromium, against the real API process and emulator.

Each test works on a generated day of its own. Waits are Playwright's expectations (they poll the
page until the condition holds or fail at the timeout), never sleeps.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import date, timedelta

import httpx
import pytest

from depot.http.auth import mint_token
from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.browser import AXE, PHONE, ROOT, axe_violations, chromium, open_page

pytestmark = pytest.mark.browser
SECRET = "browser-secret-" + "x" * 40
WAIT_MS = 15_000
TILES = (
    "drivers",
    "packages",
    "assigned",
    "unassigned",
    "accepted",
    "in_progress",
    "delivered",
    "failed",
    "cancelled",
    "off_duty",
)
_days = itertools.count()


def new_day() -> str:
    return (date(2074, 1, 1) + timedelta(days=next(_days))).isoformat()


@pytest.fixture(scope="module")
def api(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint) as proc:
        yield proc


@pytest.fixture(scope="module")
def secured(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint, DEPOT_AUTH_SECRET=SECRET) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser():
    with chromium() as new_context:
        yield new_context


class Day:
    """A generated day imported through the API, with helpers that read it back the same way."""

    def __init__(
        self,
        url: str,
        drivers: int = 10,
        per_driver: int = 10,
        assign: int | None = 6,
        cap: int = 6,
        token: str | None = None,
    ):
        self.url, self.day = url, new_day()
        seed = date.fromisoformat(
            self.day
        ).toordinal()  # package ids of its own (SPEC 4: one open day each)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = generate_day(seed=seed, drivers=drivers, packages_per_driver=per_driver)
        self.post("/manifests", {"day": self.day, **body})
        self.driver_ids = [d["driver_id"] for d in body["drivers"]]
        if assign:
            self.post(
                "/assign",
                {"day": self.day, "driver_ids": self.driver_ids[:assign], "max_per_driver": cap},
            )

    def post(self, path: str, body: dict) -> dict:
        r = httpx.post(self.url + path, json=body, headers=self.headers, timeout=60)
        assert r.status_code < 300, r.text
        return r.json()

    def get(self, path: str, **params) -> dict:
        r = httpx.get(
            self.url + path, params={"day": self.day, **params}, headers=self.headers, timeout=60
        )
        assert r.status_code == 200, r.text
        return r.json()

    def counts(self) -> dict:
        return self.get(f"/days/{self.day}/summary")["counts"]

    def held(self, driver_id: str) -> list[dict]:
        return self.get(f"/drivers/{driver_id}/assignments")["assignments"]


def board(context, day: Day):
    page = open_page(context, f"/board?day={day.day}")
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    return page


def expect_tiles(page, counts: dict) -> None:
    from playwright.sync_api import expect

    for key in TILES:
        expect(page.locator(f"[data-count='{key}']")).to_have_text(
            str(counts[key]), timeout=WAIT_MS
        )


def clean(context) -> None:
    log = context.log
    assert not log.blocked, f"the page tried to fetch from elsewhere: {log.blocked}"
    assert not log.console_errors, log.console_errors


# --- the pages themselves --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/board", "/driver"])
def test_pages_are_html_with_a_csp_without_inline_scripts(api, path):
    r = httpx.get(api.url + path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "<script>" not in r.text  # every script is a file of /static
    for src in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', r.text):
        if not src.startswith("data:"):
            assert src.startswith((api.url, "/")), src
            assert httpx.get(src if src.startswith("http") else api.url + src).status_code == 200, (
                src
            )


def test_a_bad_day_is_a_clear_422(api):
    r = httpx.get(api.url + "/board", params={"day": "tomorrow"})
    assert r.status_code == 422 and "day" in r.json()["error"]["message"]


def test_vendored_libraries_are_the_locked_ones():
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())["packages"]
    vendored = ROOT / "src" / "depot" / "web" / "static" / "vendor"
    for name, info in json.loads((vendored / "VERSIONS.json").read_text()).items():
        assert lock[f"node_modules/{info['package']}"]["version"] == info["version"], name
    source = ROOT / "web" / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
    assert (vendored / "chart.umd.min.js").read_bytes() == source.read_bytes()
    assert AXE.exists()


# --- the board -------------------------------------------------------------------------------


def test_tiles_equal_the_api_counts_offline_and_without_errors(api, browser):
    day = Day(api.url)
    context = browser(api.url)
    page = board(context, day)
    counts = day.counts()
    assert counts["assigned"] > 0 and counts["unassigned"] > 0
    expect_tiles(page, counts)
    assert page.locator("#drivers-body tr").count() == len(day.driver_ids)
    assert page.locator("#pool-body tr").count() == min(25, counts["unassigned"])
    assert page.locator("#map-canvas").bounding_box()["height"] > 100
    clean(context)


def test_assignment_preview_writes_nothing_then_commit_assigns(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url, assign=None)
    page = board(browser(api.url), day)
    page.fill("#run-cap", "4")
    page.fill("#run-drivers", ", ".join(day.driver_ids[:5]))
    page.click("#run-form button[type=submit]")
    expect(page.locator("#preview")).to_be_visible(timeout=WAIT_MS)
    planned = int(
        re.match(r"(\d+) packages", page.locator("#preview-summary").inner_text()).group(1)
    )
    assert 0 < planned <= 20
    assert day.counts()["assigned"] == 0  # the preview was a dry run
    page.click("#commit")
    expect(page.locator("[data-count='assigned']")).to_have_text(str(planned), timeout=WAIT_MS)
    assert day.counts()["assigned"] == planned
    expect_tiles(page, day.counts())


def test_reassign_offers_only_drivers_that_accept_the_package(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url)
    page = board(browser(api.url), day)
    row = page.locator("#pool-body tr").first
    package_id = row.get_attribute("data-package")
    eligible = [
        d["driver_id"] for d in day.get(f"/packages/{package_id}/eligible-drivers")["drivers"]
    ]
    row.get_by_role("button", name=f"Reassign {package_id}").click()
    options = page.locator("#reassign-driver option")
    if eligible:
        expect(options).to_have_count(len(eligible), timeout=WAIT_MS)
        assert [o.get_attribute("value") for o in options.all()] == eligible
        page.select_option("#reassign-driver", eligible[-1])
        page.click("#reassign-ok")
        expect(page.locator("#reassign-dialog")).not_to_be_visible(timeout=WAIT_MS)
        assert day.get(f"/packages/{package_id}")["driver_id"] == eligible[-1]
    else:
        expect(options).to_have_text(["no driver accepts it now"], timeout=WAIT_MS)
        expect(page.locator("#reassign-ok")).to_be_disabled()


def test_off_duty_moves_the_drivers_packages(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url, assign=6, cap=5)
    driver_id = day.driver_ids[0]
    before = {a["package_id"] for a in day.held(driver_id)}
    assert before
    page = board(browser(api.url), day)
    page.get_by_role("button", name=f"Set off duty: {driver_id}", exact=True).click()
    row = page.locator(f"tr[data-driver='{driver_id}']")
    expect(row.locator(".avail")).to_have_text("off duty", timeout=WAIT_MS)
    assert day.held(driver_id) == []
    expect(page.locator("[data-count='off_duty']")).to_have_text("1", timeout=WAIT_MS)
    others = {a["package_id"] for d in day.driver_ids[1:6] for a in day.held(d)}
    assert before & others or day.counts()["unassigned"] >= len(
        before
    )  # moved on or back to the pool


def test_package_search_shows_the_timeline_and_markup_as_text(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url)
    driver_id = day.driver_ids[0]
    package_id = day.held(driver_id)[0]["package_id"]
    note = "<script>window.__pwned = 1</script><b>bold</b>"
    day.post(
        "/update",
        {
            "driver_id": driver_id,
            "package_id": package_id,
            "status": "failed_to_deliver",
            "reason": "refused",
            "note": note,
        },
    )
    page = board(browser(api.url), day)
    page.fill("#package-q", package_id)
    page.click("#package-search button")
    expect(page.locator("[data-fact='note']")).to_have_text(note, timeout=WAIT_MS)
    expect(page.locator("[data-fact='status']")).to_have_text("failed to deliver")
    expect(page.locator("[data-fact='reason']")).to_have_text("refused")
    assert page.locator("#package-history li").count() >= 2  # imported, assigned, failed...
    assert page.locator("#package-view b").count() == 0
    assert page.evaluate("window.__pwned") is None


# --- the driver's view -----------------------------------------------------------------------


def test_driver_delivers_on_a_phone_and_the_open_board_shows_it(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url)
    driver_id = day.driver_ids[1]
    desk = board(browser(api.url), day)
    expect_tiles(desk, day.counts())
    phone = open_page(
        browser(api.url, viewport=PHONE), f"/driver?day={day.day}&driver_id={driver_id}"
    )
    phone.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    cards = phone.locator("li.delivery")
    held = day.held(driver_id)
    expect(cards).to_have_count(len(held))
    order = [(a["delivery_hour"], a["distance_km"]) for a in held]
    shown = [c.get_attribute("data-package") for c in cards.all()]
    by_id = {a["package_id"]: (a["delivery_hour"], a["distance_km"]) for a in held}
    assert [by_id[p] for p in shown] == sorted(order)
    first = cards.first
    package_id = first.get_attribute("data-package")
    assert sorted(b.get_attribute("data-next") for b in first.locator(".moves button").all()) == [
        "accepted",
        "failed_to_deliver",
        "in_progress",
    ]
    first.locator("[data-next='in_progress']").click()
    card = phone.locator(f"li.delivery[data-package='{package_id}']")
    expect(card).to_have_attribute("data-status", "in_progress", timeout=WAIT_MS)
    card.locator("[data-next='delivered']").click()
    card.get_by_label("Recipient's name").fill("Ada <i>Lovelace</i>")
    card.get_by_role("button", name="Mark delivered").click()
    expect(card).to_have_attribute("data-status", "delivered", timeout=WAIT_MS)
    expect(card.locator(".proof-shown")).to_contain_text("Ada <i>Lovelace</i>")
    assert card.locator(".moves button").count() == 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # the board, open all along, shows it without a reload (GET /events)
    expect(desk.locator("[data-count='delivered']")).to_have_text("1", timeout=WAIT_MS)
    expect_tiles(desk, day.counts())


def test_a_failed_package_shows_its_reason_and_note_as_text(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url)
    driver_id = day.driver_ids[2]
    page = open_page(
        browser(api.url, viewport=PHONE), f"/driver?day={day.day}&driver_id={driver_id}"
    )
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    card = page.locator("li.delivery").first
    package_id = card.get_attribute("data-package")
    card.locator("[data-next='failed_to_deliver']").click()
    card.get_by_label("Failure reason").select_option("access_denied")
    card.get_by_label("Note").first.fill("<img src=x onerror=window.__pwned=1>gate locked")
    card.get_by_role("button", name="Mark failed").click()
    card = page.locator(f"li.delivery[data-package='{package_id}']")
    expect(card.locator(".failure")).to_have_text(
        "Failed: access denied — <img src=x onerror=window.__pwned=1>gate locked", timeout=WAIT_MS
    )
    assert page.locator("li.delivery img").count() == 0 and page.evaluate("window.__pwned") is None
    item = next(a for a in day.held(driver_id) if a["package_id"] == package_id)
    assert (item["status"], item["reason"]) == ("failed_to_deliver", "access_denied")


# --- authentication ---------------------------------------------------------------------------


def sign_in(page, token: str) -> None:
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_with_auth_the_board_asks_for_a_token_kept_for_the_tab_only(secured, browser):
    from playwright.sync_api import expect

    token = mint_token(SECRET, "dispatcher")
    day = Day(secured.url, token=token)
    context = browser(secured.url)
    page = open_page(context, f"/board?day={day.day}")
    expect(page.locator("#signin")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#main")).to_be_hidden()
    sent: list[str | None] = []
    page.on(
        "request",
        lambda r: sent.append(r.headers.get("authorization")) if "/days/" in r.url else None,
    )
    sign_in(page, token)
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
    expect_tiles(page, day.counts())
    assert sent and all(h == f"Bearer {token}" for h in sent)
    assert token not in page.url and context.cookies() == []
    assert page.evaluate("sessionStorage.getItem('depot.token')") == token
    assert page.evaluate("localStorage.length") == 0
    live = page.locator("#live")
    expect(live).to_have_text("live", timeout=WAIT_MS)  # the event stream took the bearer header


def test_a_driver_token_is_refused_the_board_and_opens_its_own_view(secured, browser):
    from playwright.sync_api import expect

    day = Day(secured.url, token=mint_token(SECRET, "dispatcher"))
    driver_id = day.driver_ids[0]
    driver_token = mint_token(SECRET, "driver", driver_id)
    page = open_page(browser(secured.url), f"/board?day={day.day}")
    sign_in(page, driver_token)
    expect(page.locator("#error")).to_have_text(
        "A driver's token opens only the driver's view.", timeout=WAIT_MS
    )
    expect(page.locator("#main")).to_be_hidden()
    assert (
        httpx.get(
            f"{secured.url}/days/{day.day}/summary",
            headers={"Authorization": f"Bearer {driver_token}"},
        ).status_code
        == 403
    )
    page.get_by_role("link", name="Open my deliveries").click()
    page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)  # same tab: the token is kept
    expect(page.locator("li.delivery")).to_have_count(len(day.held(driver_id)))
    expect(page.locator("#driver-pick")).to_be_hidden()


# --- accessibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["board", "driver"])
def test_no_serious_or_critical_axe_violation(api, browser, which):
    day = Day(api.url)
    if which == "board":
        page = board(browser(api.url), day)
    else:
        page = open_page(
            browser(api.url, viewport=PHONE), f"/driver?day={day.day}&driver_id={day.driver_ids[0]}"
        )
        page.wait_for_selector("body[data-ready='1']", timeout=WAIT_MS)
        page.locator("[data-next='failed_to_deliver']").first.click()  # the forms too
    assert axe_violations(page) == []


def test_the_board_is_keyboard_operable(api, browser):
    from playwright.sync_api import expect

    day = Day(api.url)
    page = board(browser(api.url), day)
    row = page.locator("#pool-body tr").first
    package_id = row.get_attribute("data-package")
    page.get_by_role("button", name=f"Cancel {package_id}").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#cancel-dialog")).to_be_visible()
    page.keyboard.type("customer called")  # the reason field has the focus
    page.keyboard.press("Enter")
    expect(page.locator("#cancel-dialog")).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator("[data-count='cancelled']")).to_have_text("1", timeout=WAIT_MS)
