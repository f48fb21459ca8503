"""The operator's dashboard in a real headless Chromium (Debian's chromium and chromedriver,
installed by infra/scripts/install-chromium.sh): it asks for a key, renders the connection
cards, and shows a connector going down and coming back. The screenshots are kept under
build/test-artifacts/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_emulator.emulator import Emulator
from tests.support.pull_cloud import Cloud

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    data_dir = tmp_path_factory.mktemp("dashboard-emulator")
    with Emulator(ROOT / "serverless.yml", data_dir, retry_delays=(0.2, 0.2)) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium, "chromium is missing: run infra/scripts/install-chromium.sh"
    assert driver_path, "chromedriver is missing: run infra/scripts/install-chromium.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _state_of(browser, connector_id: str, timeout: float = 20) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(driver):
        if not driver.find_element(By.ID, "board").is_displayed():
            return False
        cards = driver.find_elements(By.CSS_SELECTOR, f'.card[data-connector-id="{connector_id}"]')
        return cards[0].get_attribute("data-state") if cards else False

    return str(WebDriverWait(browser, timeout).until(found))


def _wait_for_state(browser, connector_id: str, wanted: str, timeout: float = 20) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        browser.find_element(By.ID, "refresh").click()
        time.sleep(0.5)
        WebDriverWait(browser, timeout).until(
            lambda driver: "updated" in driver.find_element(By.ID, "updated").text
        )
        state = _state_of(browser, connector_id)
        if state == wanted:
            return
    raise AssertionError(f"the card shows {state!r}, not {wanted!r}")


def test_the_dashboard_shows_a_connector_going_down_and_coming_back(
    emulator: Emulator, cloud: Cloud, browser
) -> None:
    from selenium.webdriver.common.by import By

    from hybrid.db import database

    created = cloud.connector(f"edge-{time.time_ns()}", "relay")
    db = database(cloud.database_url)

    def heartbeat(age: str) -> None:
        with db.transaction() as tx:
            tx.execute(
                f"UPDATE connectors SET last_seen_at = now() - interval '{age}' WHERE id = :id",
                id=created["id"],
            )

    def probe(times: int) -> None:
        for _ in range(times):
            assert emulator.fire_timer("status_probe", "status-probe-every-minute").result().ok

    heartbeat("1 second")
    probe(1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{cloud.url}/dashboard")
    assert browser.find_element(By.ID, "login").is_displayed()
    browser.find_element(By.ID, "api-key").send_keys(cloud.auth["Authorization"].split()[1])
    browser.find_element(By.ID, "save").click()
    assert _state_of(browser, created["id"]) == "connected"
    card = browser.find_element(By.CSS_SELECTOR, f'.card[data-connector-id="{created["id"]}"]')
    assert created["name"] in card.text
    # The key stays in this tab's session storage, nowhere else.
    assert browser.execute_script("return localStorage.length") == 0
    assert browser.execute_script("return sessionStorage.length") == 1
    browser.save_screenshot(str(ARTIFACTS / "dashboard-connected.png"))

    heartbeat("10 minutes")
    probe(3)
    assert emulator.fire_timer("alerting", "alerting-every-minute").result().ok
    _wait_for_state(browser, created["id"], "disconnected")
    alerts = browser.find_element(By.ID, "alerts").text
    assert "ConnectorDisconnected" in alerts
    browser.save_screenshot(str(ARTIFACTS / "dashboard-disconnected.png"))

    heartbeat("1 second")
    probe(2)
    _wait_for_state(browser, created["id"], "connected")
    browser.save_screenshot(str(ARTIFACTS / "dashboard-back.png"))
    assert (ARTIFACTS / "dashboard-disconnected.png").stat().st_size > 10_000


def test_with_the_operator_key_the_dashboard_shows_the_token_pool_and_a_cooldown(
    emulator: Emulator, cloud: Cloud, browser
) -> None:
    import requests
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from local_emulator.local_env import local_secrets

    keys = local_secrets(emulator.data_dir)
    operator = {"Authorization": f"Bearer {keys['OPERATOR_KEY']}"}
    internal = {"X-Internal-API-Key": keys["INTERNAL_API_KEY"]}
    pool = f"dash{time.time_ns() % 10**9}"
    for name in ("crawler-a", "crawler-b"):
        added = requests.post(
            f"{cloud.url}/api/v1/tokens",
            json={"pool": pool, "name": name, "secret": f"sk-{name}-canary",
                  "rpm": 60, "rph": 1000, "rpd": 10000, "concurrency": 2},
            headers=operator,
            timeout=30,
        )  # fmt: skip
        assert added.status_code == 201, added.text
    # One token fails twice in a row: a 5-minute cooldown.
    failed = None
    for _ in range(2):
        lease = requests.post(
            f"{cloud.url}/api/v1/tokens/pick", json={"pool": pool}, headers=internal, timeout=30
        ).json()
        failed = failed or lease["token_id"]
        while lease["token_id"] != failed:  # let the other one succeed until ours comes back
            requests.post(f"{cloud.url}/api/v1/tokens/release", headers=internal, timeout=30,
                          json={"lease_id": lease["lease_id"], "outcome": "success",
                                "latency_ms": 50})  # fmt: skip
            lease = requests.post(f"{cloud.url}/api/v1/tokens/pick", json={"pool": pool},
                                  headers=internal, timeout=30).json()  # fmt: skip
        released = requests.post(
            f"{cloud.url}/api/v1/tokens/release",
            json={"lease_id": lease["lease_id"], "outcome": "failure", "latency_ms": 900},
            headers=internal,
            timeout=30,
        )
        assert released.status_code == 204, released.text

    browser.get(f"{cloud.url}/dashboard")
    browser.find_element(By.ID, "api-key").send_keys(cloud.auth["Authorization"].split()[1])
    browser.find_element(By.ID, "operator-key").send_keys(keys["OPERATOR_KEY"])
    browser.find_element(By.ID, "save").click()
    WebDriverWait(browser, 20).until(
        lambda driver: driver.find_element(By.ID, "tokens-section").is_displayed()
    )
    rows = {
        row.find_elements(By.TAG_NAME, "td")[0].text: [
            cell.text for cell in row.find_elements(By.TAG_NAME, "td")
        ]
        for row in browser.find_elements(By.CSS_SELECTOR, "#tokens tr")
        if row.find_elements(By.TAG_NAME, "td")[1].text == pool
    }
    assert set(rows) == {"crawler-a", "crawler-b"}
    cooling = [cells for cells in rows.values() if cells[6]]
    assert len(cooling) == 1, rows  # the failing token shows its cooldown, the other none
    assert float(cooling[0][3]) > 0  # and a risk above zero
    page = browser.page_source
    assert "canary" not in page  # no secret ever reaches the page
    browser.save_screenshot(str(ARTIFACTS / "dashboard-tokens.png"))


def test_the_page_is_static_and_locked_down(emulator: Emulator) -> None:
    import requests

    response = requests.get(f"{emulator.url}/dashboard", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "hk_" not in response.text.replace('placeholder="hk_…"', "")
