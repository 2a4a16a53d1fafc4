"""``kedro viz build``, served on 127.0.0.1 and opened in headless Chromium by Playwright."""

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags of a browser on a closed network: no background calls home, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/ensure_chromium.sh)"
    ),
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def viz_site(tmp_path_factory):
    """The static site of ``kedro viz build``, built in a scratch project and served over HTTP."""
    project = tmp_path_factory.mktemp("viz-project")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for folder in ("conf", "src"):  # copies: kedro wants its source inside the project
        shutil.copytree(
            PROJECT_ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    build = subprocess.run(
        [str(kedro), "viz", "build"], cwd=project, env=env, capture_output=True, text=True
    )
    assert build.returncode == 0 and "Success" in build.stdout, build.stdout + build.stderr
    handler = functools.partial(QuietHandler, directory=str(project / "build"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_port}", "build": project / "build"}
    server.shutdown()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page(viewport={"width": 1800, "height": 1000})
        browser.close()


# True once every name of ``names`` is on a node of the flowchart.
ALL_SHOWN = """names => {
    const shown = new Set([...document.querySelectorAll('.pipeline-node__text')]
        .map(node => node.textContent.trim()));
    return names.every(name => shown.has(name));
}"""


def shown_nodes(page, url: str, pipeline: str, expected: set[str] | None = None) -> set[str]:
    """The names on the flowchart's nodes once kedro viz has drawn ``pipeline``: once the
    ``expected`` names are there (30 s at most; the caller's assertion says what is missing),
    else after the flowchart's fade and zoom."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{url}/?pid={pipeline}")
    page.wait_for_selector(".pipeline-node__text", timeout=30_000)
    if expected:
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(ALL_SHOWN, arg=sorted(expected), timeout=30_000)
    else:
        page.wait_for_timeout(1500)  # the flowchart fades and zooms in
    return {text.strip() for text in page.locator(".pipeline-node__text").all_text_contents()}


def test_every_pipeline_shows_its_nodes_in_the_browser(viz_site, page, tmp_path):
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    expected = {name: pipeline for name, pipeline in pipelines.items() if name != "__default__"}
    assert {"data_prep", "training", "registration", "deploy", "monitor", "batch_predict"} <= set(
        expected
    )
    for name, pipeline in expected.items():
        nodes = {n.name for n in pipeline.nodes}
        # Every dataset is drawn too: transcoded ones (x@pandas, x@spark) as one, parameters hidden.
        datasets = {d.split("@")[0] for d in pipeline.datasets() if not d.startswith("params")}
        shown = shown_nodes(page, viz_site["url"], name, nodes | datasets)
        assert nodes <= shown, name
        assert datasets <= shown, name

    whole_flow = shown_nodes(
        page, viz_site["url"], "__default__", {"train_custom", "push_to_production", "promote"}
    )
    assert {"train_custom", "push_to_production", "promote"} <= whole_flow
    # The pictures in docs/training.md (kedro-viz.png) and docs/rollout.md (kedro-viz-rollout.png)
    screenshot = Path(os.environ.get("KEDRO_VIZ_SCREENSHOT", tmp_path / "kedro-viz.png"))
    rollout = screenshot.with_stem(f"{screenshot.stem}-rollout")
    for pipeline, picture in (("training", screenshot), ("rollout", rollout)):
        shown_nodes(page, viz_site["url"], pipeline)
        if page.locator(".feature-hints__close").is_visible():
            page.locator(".feature-hints__close").click()
            page.wait_for_timeout(4000)  # and its farewell note fades
        page.screenshot(path=str(picture))
        assert picture.stat().st_size > 50_000


def test_the_build_describes_layers_and_mlflow_datasets(viz_site):
    api = viz_site["build"] / "api"
    main = json.loads((api / "main").read_text())
    assert main["layers"][0] == "raw" and main["layers"][-1] == "reporting"
    monitor = json.loads((api / "pipelines" / "monitor").read_text())
    types = {
        n["name"]: n["dataset_type"]
        for d in (main, monitor)
        for n in d["nodes"]
        if n["type"] == "data"
    }
    assert types["strategy_comparison_chart"].endswith("MlflowMatplotlibDataset")
    assert types["monitoring_metrics"].endswith("MlflowMetricsHistoryDataset")
