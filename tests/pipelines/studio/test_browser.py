"""The Studio in a real browser: Debian's headless Chromium driven by Playwright.

One small local training run (10 items x 300 days, the npts candidate only) builds the state
for every test here. Skipped when Chromium or Playwright is missing on a developer machine;
in CI (CI=true) their absence fails instead, since .ci/run installs both.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CHROMIUM = Path("/usr/bin/chromium")


def _browser_or_skip():
    problem = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run in CI: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory):
    """FORECAST_HOME after one small local training run (registered, PendingManualApproval)."""
    _browser_or_skip()
    from pipelines.run import main as run_main
    from processing.generate import generate_sales, write_frame

    home = tmp_path_factory.mktemp("studio-home")
    data = write_frame(
        generate_sales(products=5, regions=2, start="2023-01-01", end="2023-10-27"), home.parent / "sales.csv"
    )
    saved = {k: os.environ.get(k) for k in ("FORECAST_HOME", "FORECAST_ENDPOINT_PORT")}
    os.environ.update(FORECAST_HOME=str(home), FORECAST_ENDPOINT_PORT=str(_free_port()))
    try:
        code = run_main(["--param", f"InputDataUrl={data}", "--param", "AutoMLAlgorithms=npts"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert code == 0, "the small training run failed"
    yield home
    from deploy import endpoint

    endpoint.stop(home, resolve(environ={}).endpoint_name)


@pytest.fixture(scope="session")
def studio(trained_home):
    """The Studio over that state, on 127.0.0.1 and a random port; yields (url, settings)."""
    from pipelines.studio.server import make_server

    settings = resolve(environ={"FORECAST_HOME": str(trained_home), "FORECAST_ENDPOINT_PORT": str(_free_port())})
    server = make_server(settings, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.url, settings
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(trained_home):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    yield page
    context.close()
    outside = [url for url in requests if not url.startswith(("http://127.0.0.1", "data:", "about:"))]
    assert outside == [], f"the Studio fetched from outside loopback: {outside}"


def test_the_executions_list_shows_the_run_and_leads_to_its_graph_steps_metrics_and_plots(studio, page):
    url, settings = studio
    page.goto(url + "/")
    row = page.locator("#executions tr[data-execution]").first
    assert "DemandForecastTraining" in row.inner_text() and "Succeeded" in row.inner_text()
    assert "passed" in row.locator("td").nth(6).inner_text()  # the quality gate outcome
    assert "AutoMLAlgorithms=npts" in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_selector("svg.pipeline-graph")
    statuses = {
        g.get_attribute("data-step"): g.get_attribute("data-status")
        for g in page.locator("svg.pipeline-graph g.step").all()
    }
    assert statuses["RegisterModel"] == "Succeeded" and statuses["QualityTooLow"] == "NotExecuted"
    # the graph fits: no horizontal scrolling, every box inside the viewport
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    for box in page.locator("svg.pipeline-graph g.step rect").all():
        bounds = box.bounding_box()
        assert bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= 1400
    # both gates passed (QualityGate, then ChampionGate with no champion yet): two branches taken, two not
    assert page.locator("text=if true (taken)").count() == 2
    assert page.locator("text=else (not taken)").count() == 2
    metrics = page.inner_text("#metrics").lower()
    assert metrics.count("\n") >= 5 and "baseline (seasonal_naive)" in metrics and "\nwape\t" in metrics
    page.click("#step-AutoML summary")
    assert "automl_result.json" in page.inner_text("#step-AutoML")
    assert "[runtime]" in page.inner_text("#step-AutoML pre.log")


def test_a_plot_opens_full_size(studio, page):
    url, settings = studio
    from pipelines.studio import state

    execution = state.load_executions(settings)[0]["execution_id"]
    page.goto(f"{url}/executions/{execution}")
    plots = page.locator(".plots img")
    assert plots.count() >= 5
    thumbnail = plots.nth(1)
    thumbnail.scroll_into_view_if_needed()
    shown = thumbnail.bounding_box()["width"]
    natural = thumbnail.evaluate("img => img.naturalWidth")
    thumbnail.click()
    page.wait_for_selector("#lightbox.open")
    enlarged = page.locator("#lightbox img")
    page.wait_for_function("document.querySelector('#lightbox img').complete")
    assert enlarged.bounding_box()["width"] == pytest.approx(natural, abs=2) and natural > shown
    page.keyboard.press("Escape")
    assert page.locator("#lightbox.open").count() == 0
    response = page.request.get(url + thumbnail.get_attribute("data-full"))
    assert response.ok and response.headers["content-type"] == "image/png"


def test_a_running_execution_updates_live_without_reloading(studio, page):
    url, settings = studio
    from pipelines.studio import state

    finished = state.load_executions(settings)[0]
    source = settings.home_path / "executions" / finished["execution_id"]
    live_id = "live" + finished["execution_id"][4:]
    target = settings.home_path / "executions" / live_id
    shutil.copytree(source, target)
    running = json.loads(json.dumps(finished), object_hook=None)
    running.update(execution_id=live_id, status="Executing", duration_seconds=None, end_time=None)
    evaluate = [step["name"] for step in running["steps"]].index("Evaluate")
    for step in running["steps"][evaluate + 1 :]:
        step.update(status="Pending", duration_seconds=None, start_time=None)
    running["steps"][evaluate].update(status="Executing", duration_seconds=None)
    (target / "execution.json").write_text(json.dumps(running))
    try:
        page.goto(f"{url}/executions/{live_id}")
        assert page.get_attribute("g.step[data-step='Evaluate']", "data-status") == "Executing"
        page.evaluate("window.__same_page = true")
        (target / "execution.json").write_text(
            json.dumps(
                dict(
                    running,
                    steps=[
                        dict(s, status="Succeeded", duration_seconds=1.0) if s["name"] == "Evaluate" else s
                        for s in running["steps"]
                    ],
                )
            )
        )
        page.wait_for_selector("g.step[data-step='Evaluate'][data-status='Succeeded']", timeout=15000)
        assert page.evaluate("window.__same_page") is True  # updated by polling, not a reload
        assert "Succeeded" in page.inner_text("#steps-table tr[data-step='Evaluate']")
    finally:
        shutil.rmtree(target)


def test_approving_on_the_registry_deploys_and_the_endpoint_shows_in_service(studio, page):
    url, settings = studio
    page.goto(url + "/registry")
    version = page.locator("table.versions tr[data-version]").first
    assert "PendingManualApproval" in version.inner_text()
    version.locator("button.approve").click()
    page.wait_for_selector("#flash", timeout=240000)
    flash = page.inner_text("#flash")
    assert "Approved version 1" in flash and "Endpoint URL: http://127.0.0.1:" in flash
    assert "Approved" in page.inner_text("table.versions tr[data-version='1'] td.status")
    page.click("header >> text=Endpoints")
    row = page.locator(f"#endpoints tr[data-endpoint='{settings.endpoint_name}']")
    deadline = time.monotonic() + 60
    while "InService" not in row.locator("td.status").inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(1000)
        page.reload()
    assert "InService" in row.locator("td.status").inner_text()
    endpoint_url = flash.split("Endpoint URL: ")[1].split()[0]
    assert endpoint_url in row.inner_text() and "model-package/demand-forecasting/1" in row.inner_text()
    response = page.request.get(endpoint_url + "/ping")
    assert response.ok


@pytest.mark.parametrize("width", [1280, 1024])
def test_the_executions_table_stays_inside_its_card_and_the_page_never_scrolls_sideways(studio, page, width):
    """Long parameter values (a path, an algorithm list) were unbreakable and pushed the table out of its card."""
    url, settings = studio
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url + "/")
    table = page.locator("#executions")
    card = page.locator("div.card", has=table)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no page-wide sideways scroll
    fits = card.evaluate("c => c.scrollWidth <= c.clientWidth")
    scrolls = card.evaluate("c => getComputedStyle(c).overflowX") in ("auto", "scroll")
    assert fits or scrolls, "the table overflows its card and the card does not scroll"
    card_box, table_box = card.bounding_box(), table.bounding_box()
    if fits:  # then the table is drawn inside the card's border, the last column included
        assert table_box["x"] + table_box["width"] <= card_box["x"] + card_box["width"] + 0.5
    long_value = page.locator("#executions td.params code", has_text="InputDataUrl=").first
    value_box = long_value.bounding_box()
    assert value_box["x"] + value_box["width"] <= card_box["x"] + card_box["width"] + 0.5 or scrolls


def test_every_page_has_an_icon_and_the_browser_gets_no_404(studio, page):
    url, settings = studio
    failed, errors = [], []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for path in ("/", "/registry", "/endpoints"):
        page.goto(url + path)
        icon = page.locator("link[rel=icon]")
        assert icon.count() == 1 and icon.get_attribute("href").startswith("data:image/svg+xml,")
        # the data: URI is a well-formed SVG the browser can draw
        drawn = page.evaluate(
            """href => new Promise(done => { const i = new Image(); i.onload = () => done(i.naturalWidth);
            i.onerror = () => done(0); i.src = href; })""",
            icon.get_attribute("href"),
        )
        assert drawn > 0
    # pages without the link tag (the HTML record, a planner report) make the browser ask for /favicon.ico
    response = page.request.get(url + "/favicon.ico")
    assert response.ok and response.headers["content-type"] == "image/svg+xml" and b"<svg" in response.body()
    assert failed == [] and errors == [], (failed, errors)
