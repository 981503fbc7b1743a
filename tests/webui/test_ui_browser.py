"""The web UI in a real browser: Debian's headless Chromium driven by selenium against an
embedded broker's management listener.

An administrator logs in, declares a queue from the form, publishes to it from the UI and
from a real client (pika), sees the depth change, gets a message, purges the queue; a
monitoring user sees no admin pages; the queues page of a broker with 10,000 queues
shows one server-side page. Screenshots of the overview and a queue page are written to
a temporary folder, and to docs/screenshots/ when AMQPBROKER_UPDATE_SCREENSHOTS=1
(README.md shows them).

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`,
.ci/run does it): without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pika
import pika.exceptions
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from amqpbroker.embed import Broker, run_in_thread

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WAIT = 30  # seconds: generous, the machine is shared


@pytest.fixture(scope="module")
def ui_broker() -> Iterator[Broker]:
    with run_in_thread(management_port=0, loopback_users=(),
                       management_rates_interval=1.0) as broker:
        yield broker


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    assert os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM), (
        "Debian's chromium and chromium-driver are needed: apt-get install chromium "
        "chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1100", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshot(browser: WebDriver, tmp_path_factory: pytest.TempPathFactory
               ) -> Callable[[str], None]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("AMQPBROKER_UPDATE_SCREENSHOTS") == "1":
        folders.append(DOCS_SCREENSHOTS)

    def save(name: str) -> None:
        browser.execute_script("window.scrollTo(0, 0)")
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(folder / name))
            assert (folder / name).stat().st_size > 10_000  # a picture, not a blank page
    return save


def wait(browser: WebDriver, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    # pages re-render their figures at every refresh: an element found a moment ago may
    # be gone, so the conditions are simply tried again
    return WebDriverWait(browser, timeout, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(condition)


def click(browser: WebDriver, element_id: str, by: str = By.ID) -> None:
    wait(browser, lambda d: d.find_element(by, element_id).click() or True)


def by_id(browser: WebDriver, element_id: str) -> Any:
    return wait(browser, ec.visibility_of_element_located((By.ID, element_id)))


def text_of(browser: WebDriver, element_id: str, text: str) -> None:
    wait(browser, lambda d: d.find_element(By.ID, element_id).text.strip() == text,
         timeout=WAIT)


def samples(browser: WebDriver, chart_id: str, at_least: int) -> None:
    wait(browser, lambda d: int(d.find_element(By.ID, chart_id)
                                .get_attribute("data-samples") or 0) >= at_least)


def type_into(browser: WebDriver, element_id: str, text: str) -> None:
    field = by_id(browser, element_id)
    field.clear()
    field.send_keys(text)


def login(browser: WebDriver, base: str, user: str, password: str) -> None:
    browser.get(base + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(base + "/#/")
    browser.refresh()
    type_into(browser, "login-username", user)
    type_into(browser, "login-password", password)
    click(browser, "login-submit")


def in_loop(broker: Broker, fn: Callable[[], Any]) -> Any:
    """Run fn in the broker's event loop thread (the admin facade is not thread-safe)."""
    return broker.call_soon(fn)  # type: ignore[attr-defined]


def go(browser: WebDriver, base: str, route: str) -> None:
    browser.execute_script("location.hash = arguments[0]", route)


def test_administrator_declares_publishes_and_purges_a_queue(
        ui_broker: Broker, browser: WebDriver, screenshot: Callable[[str], None]) -> None:
    base = ui_broker.management_url
    login(browser, base, "guest", "guest")
    wait(browser, lambda d: "guest" in d.find_element(By.ID, "whoami").text)
    by_id(browser, "totals")
    Select(by_id(browser, "refresh-every")).select_by_value("1000")
    for nav in ("overview", "connections", "channels", "exchanges", "queues", "admin",
                "definitions"):
        assert browser.find_elements(By.ID, f"nav-{nav}"), nav

    # declare a queue from the form
    click(browser, "nav-queues")
    type_into(browser, "declare-queue-name", "ui-orders")
    click(browser, "declare-queue-submit")
    text_of(browser, "declare-queue-status", "Queue ui-orders declared.")
    assert in_loop(ui_broker, lambda: ui_broker.admin.queue_info("/", "ui-orders")["durable"])
    click(browser, "ui-orders", By.LINK_TEXT)
    text_of(browser, "queue-messages", "0")

    # publish from the queue page (POST .../amq.default/publish) ...
    type_into(browser, "publish-payload", "hello from the UI")
    click(browser, "publish-submit")
    text_of(browser, "publish-status", "Message published.")
    text_of(browser, "queue-messages", "1")
    # ... and from a real client: the page's refresh shows the new depth
    connection = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        channel = connection.channel()
        for i in range(2):
            channel.basic_publish("", "ui-orders", f"from pika {i}".encode())
    finally:
        connection.close()
    text_of(browser, "queue-messages", "3")
    text_of(browser, "queue-ready", "3")

    # get a message (requeued), then bind the queue to amq.direct
    click(browser, "get-messages-submit")
    wait(browser, lambda d: "hello from the UI" in d.find_element(By.ID, "got-messages").text)
    type_into(browser, "bind-queue-source", "amq.direct")
    type_into(browser, "bind-queue-routing_key", "orders")
    click(browser, "bind-queue-submit")
    wait(browser, lambda d: "amq.direct" in d.find_element(By.ID, "queue-bindings").text)
    samples(browser, "chart-queue-depth", 3)
    screenshot("queue.png")

    # purge: the browser asks first
    click(browser, "purge")
    wait(browser, ec.alert_is_present()).accept()
    text_of(browser, "queue-messages", "0")
    assert in_loop(ui_broker, lambda: ui_broker.admin.queue_info("/", "ui-orders")
                   ["messages"]) == 0

    click(browser, "nav-overview")
    by_id(browser, "totals")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#listeners tbody tr"))
    wait(browser, lambda d: "none" in d.find_element(By.ID, "alarms").text)
    samples(browser, "chart-rates", 3)
    screenshot("overview.png")


def test_the_ui_shows_only_what_the_tags_allow(ui_broker: Broker, browser: WebDriver) -> None:
    base = ui_broker.management_url
    admin = ui_broker.admin
    in_loop(ui_broker, lambda: [admin.put_user("watcher", password="w-secret",
                                               tags=["monitoring"]),
                                admin.put_user("nobody", password="n-secret", tags=[]),
                                admin.put_user("rules", password="r-secret",
                                               tags=["policymaker"]),
                                admin.set_permission("rules", "/", ".*", ".*", ".*")])

    login(browser, base, "watcher", "w-secret")
    by_id(browser, "totals")
    by_id(browser, "alarms")  # monitoring users see the node
    assert browser.find_elements(By.ID, "nav-queues")
    assert not browser.find_elements(By.ID, "nav-admin")
    assert not browser.find_elements(By.ID, "nav-definitions")
    go(browser, base, "#/admin/users")
    assert "do not allow" in by_id(browser, "forbidden").text
    assert not browser.find_elements(By.ID, "add-user")

    login(browser, base, "rules", "r-secret")
    click(browser, "nav-admin")
    by_id(browser, "tab-policies")
    assert not browser.find_elements(By.ID, "tab-users")
    by_id(browser, "add-policy")

    login(browser, base, "nobody", "n-secret")
    wait(browser, lambda d: "Not management user" in d.find_element(By.ID, "login-status").text)
    login(browser, base, "watcher", "wrong")
    wait(browser, lambda d: "Login failed" in d.find_element(By.ID, "login-status").text)


def test_connections_exchanges_admin_and_definitions_pages(
        ui_broker: Broker, browser: WebDriver, downloads: Path) -> None:
    base = ui_broker.management_url
    login(browser, base, "guest", "guest")
    by_id(browser, "totals")
    client = pika.BlockingConnection(pika.URLParameters(ui_broker.url + "?heartbeat=0"))
    try:
        client.channel()
        # connections: the list, the detail with its channel, force close
        go(browser, base, "#/connections")
        wait(browser, lambda d: "Pika" in d.find_element(By.ID, "connections").text)  # client
        click(browser, "#connections tbody td a", By.CSS_SELECTOR)
        wait(browser, lambda d: "(1)" in d.find_element(By.ID, "page").text)  # its channel
        click(browser, "force-close")
        wait(browser, ec.alert_is_present()).accept()
        # "Connection closed." or, after the next refresh, "This connection is closed."
        wait(browser, lambda d: "closed" in d.find_element(By.ID, "connection-status").text)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            for _ in range(100):
                client.process_data_events(time_limit=0.1)
        assert closed.value.reply_code == 320
    finally:
        if client.is_open:
            client.close()

    # exchanges: declare from the form, then publish to it (nothing bound: not routed)
    go(browser, base, "#/exchanges")
    type_into(browser, "declare-exchange-name", "ui-events")
    Select(by_id(browser, "declare-exchange-type")).select_by_value("topic")
    click(browser, "declare-exchange-submit")
    text_of(browser, "declare-exchange-status", "Exchange ui-events declared.")
    go(browser, base, "#/exchanges/%2F/ui-events")
    type_into(browser, "publish-routing_key", "orders.created")
    type_into(browser, "publish-payload", "{}")
    click(browser, "publish-submit")
    text_of(browser, "publish-status", "Message published, but not routed to any queue.")

    # admin: add a user from the form; every tab and the definitions page render
    go(browser, base, "#/admin/users")
    type_into(browser, "add-user-name", "alice")
    type_into(browser, "add-user-password", "a-secret")
    type_into(browser, "add-user-tags", "management")
    click(browser, "add-user-submit")
    text_of(browser, "add-user-status", "User alice saved.")
    assert in_loop(ui_broker, lambda: ui_broker.admin.user_info("alice")["tags"]) == [
        "management"]
    for tab, table in (("vhosts", "vhosts"), ("permissions", "permissions"),
                       ("policies", "policies"), ("limits", "vhost-limits")):
        click(browser, f"tab-{tab}")
        by_id(browser, table)
    go(browser, base, "#/definitions")
    type_into(browser, "export-definitions-filename", "ui-export.json")
    click(browser, "export-definitions-submit")
    wait(browser, lambda d: "Exported" in d.find_element(By.ID, "export-definitions-status")
         .text)
    exported = downloads / "ui-export.json"
    wait(browser, lambda d: exported.exists() and exported.stat().st_size > 0)
    doc = json.loads(exported.read_text())
    assert "ui-events" in [e["name"] for e in doc["exchanges"]]
    assert "alice" in [u["name"] for u in doc["users"]]
    go(browser, base, "#/channels")
    by_id(browser, "channels")
    assert not browser.find_elements(By.ID, "page-error")


def test_queues_page_with_10000_queues_shows_one_server_side_page(
        ui_broker: Broker, browser: WebDriver) -> None:
    base = ui_broker.management_url
    admin = ui_broker.admin

    def declare() -> int:
        for i in range(10_000):
            admin.declare_queue(None, "/", f"bulk-{i:05d}", durable=False)
        return len(admin.queues())
    total = in_loop(ui_broker, declare)
    pages = -(-total // 100)

    login(browser, base, "guest", "guest")
    by_id(browser, "totals")
    go(browser, base, "#/queues")
    text_of(browser, "queues-page", f"Page 1 of {pages:,}")
    wait(browser, lambda d: d.find_element(By.ID, "queues-page")
         .get_attribute("data-page-count") == str(pages))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")) == 100
    text_of(browser, "queues-count", f"{total:,} queues")
    # every call the page made for the list asked the server for one page
    calls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => n.includes('/api/queues'))")
    assert calls and all("page=" in c and "page_size=100" in c and "sort=name" in c
                         for c in calls), calls

    click(browser, "queues-next")
    text_of(browser, "queues-page", f"Page 2 of {pages:,}")

    # filter and sort happen on the server: 10 names match; sorted by name, then reversed
    type_into(browser, "queues-filter", "bulk-0099")
    text_of(browser, "queues-page", "Page 1 of 1")
    text_of(browser, "queues-count", f"{total:,} queues (10 match)")
    wait(browser, lambda d: "▲" in d.find_element(By.ID, "queues-sort-name").text)
    click(browser, "queues-sort-name")
    wait(browser, lambda d: "▼" in d.find_element(By.ID, "queues-sort-name").text)
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#queues tbody tr td:nth-child(2)")
         .text == "bulk-00999")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")) == 10
