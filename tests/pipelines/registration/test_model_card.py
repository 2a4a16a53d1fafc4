"""The model card through registration, the push and deploy, on the two real basic-auth
MLflow servers, then opened in Chromium."""

import os
import shutil
from pathlib import Path

import mlflow
import pytest

from mnist_mlops.datasets import PictureSetDataset
from mnist_mlops.pipelines.data_prep.nodes import build_data_report
from mnist_mlops.pipelines.deploy.nodes import select_version, stage_version
from mnist_mlops.pipelines.deploy.parameters import DeploymentParameters
from mnist_mlops.pipelines.registration.nodes import (
    build_model_card,
    evaluate_candidate,
    log_candidate,
    publish_model_card,
    push_to_production,
    register_in_sandbox,
)
from mnist_mlops.pipelines.registration.parameters import RegistrationParameters
from mnist_mlops.registry.model_card.store import CARD_FOLDER
from mnist_mlops.registry.records import DeployValidation
from tests.conftest import REAL_PICTURES, workspace
from tests.pipelines.registration.conftest import CHAMPION
from tests.registry.test_model_card_render import SECTIONS
from tests.test_viz import CHROMIUM, CHROMIUM_ARGS

NAME = "carded-cnn"  # its own model in the shared servers: no other test's aliases or versions


def deployment(**changes) -> DeploymentParameters:
    values = {
        "model_name": NAME,
        "enabled": True,
        "version": None,
        "rollback": False,
        "mode": "direct",
        "min_test_accuracy": 0.3,  # the tiny model reads about half the digits
        "min_photo_accuracy": 0.2,
        "picture_batch_size": 32,
        "server_ready_timeout_s": 60,
        "infra_requests": 1,
    }
    return DeploymentParameters(**{**values, **changes})


def _registered_card(servers, tiny_model, small_model_input, pictures):
    """log_candidate, evaluate_candidate and build_model_card in a run of the sandbox server."""
    registration = RegistrationParameters(
        model_name=NAME, min_test_accuracy=0.3, max_regression=0.002, production_experiment="pushed"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set_experiment sets it
        for key, value in servers["sandbox"].credentials.items():
            patch.setenv(key, value)
        mlflow.set_tracking_uri(servers["sandbox"].uri)
        mlflow.set_experiment("model-card-tests")
        try:
            with mlflow.start_run():
                candidate = log_candidate(tiny_model, CHAMPION)
                production = workspace(servers["production"], "production")
                evaluation = evaluate_candidate(
                    candidate, small_model_input, pictures, production, registration
                )
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.tracking.fluent._active_experiment_id = None
    data_report = build_data_report(small_model_input)
    card, card_pictures = build_model_card(
        CHAMPION, evaluation, data_report, small_model_input, registration
    )
    return registration, candidate, evaluation, data_report, card, card_pictures


@pytest.fixture(scope="module")
def carded(servers, tiny_model, small_model_input, tmp_path_factory):
    """A version registered, pushed and carded, staged by deploy twice, then
    registered again; the descriptions after registration and at the end, the cards at the end."""
    sandbox = workspace(servers["sandbox"], "sandbox")
    production = workspace(servers["production"], "production")
    pictures = PictureSetDataset(filepath=str(REAL_PICTURES)).load()
    registration, candidate, evaluation, data_report, card, card_pictures = _registered_card(
        servers, tiny_model, small_model_input, pictures
    )
    sandbox_version = register_in_sandbox(candidate, evaluation, data_report, sandbox, registration)
    pushed = push_to_production(sandbox_version, sandbox, production, registration)
    published = publish_model_card(
        card, card_pictures, sandbox_version, pushed, sandbox, production
    )
    versions = {
        "sandbox": (sandbox, sandbox_version.version),
        "production": (production, pushed.version),
    }
    registered = {place: description(*where) for place, where in versions.items()}

    # Deploy's figures twice (validate_version's output, tested in tests/pipelines/deploy): the
    # second stage_version replaces the first one's section.
    for photo_accuracy in (0.25, 0.375):
        params = deployment(version=int(pushed.version))
        validation = DeployValidation(
            test_accuracy=0.5,
            photo_accuracy=photo_accuracy,
            photo_accuracy_by_category={"plot": photo_accuracy},
        )
        selected = select_version(production, params)
        stage_version(selected.model_copy(update={"validation": validation}), production, params)
    # Registering the same version again keeps its card, deploy's section included.
    publish_model_card(card, card_pictures, sandbox_version, pushed, sandbox, production)
    folder = tmp_path_factory.mktemp("card")
    return {
        "card": card,
        "published": published,
        "versions": versions,
        "registered": registered,
        "deployed": {place: description(*where) for place, where in versions.items()},
        "files": {place: download(*where, folder / place) for place, where in versions.items()},
    }


def description(place, version: str) -> str:
    with place.session() as client:
        return client.get_model_version(NAME, version).description


def download(place, version: str, folder: Path) -> Path:
    with place.session() as client:
        run_id = client.get_model_version(NAME, version).run_id
        folder.mkdir()
        return Path(client.download_artifacts(run_id, CARD_FOLDER, str(folder)))


def test_registration_writes_the_card_and_its_summary_in_both_workspaces(carded):
    sandbox_version = carded["versions"]["sandbox"][1]
    production_version = carded["versions"]["production"][1]
    lineage = f"sandbox version {sandbox_version} -> production version {production_version}"
    pictures = carded["card"].picture_names()
    assert pictures == ["confusion_matrix.png", "confused_pairs.png"]  # the tiny model errs
    for place in ("sandbox", "production"):
        registered = carded["registered"][place]
        assert f"**{NAME}**: lean_cnn CNN trained with the single_node strategy" in registered
        assert lineage in registered and "Deployment validation" not in registered
        assert "Pa55word" not in registered
        files = {path.name for path in carded["files"][place].iterdir()}
        assert {"model_card.md", "model_card.html", "model_card.json", *pictures} <= files
    assert carded["published"] == {
        "name": NAME,
        "sandbox": sandbox_version,
        "production": production_version,
        "path": "model_card",
    }


def test_deploy_adds_its_section_once_keeping_registrations(carded):
    sandbox, production = (carded["files"][place] / "model_card.md" for place in carded["files"])
    production_card, sandbox_card = production.read_text(), sandbox.read_text()
    heading = production_card.split("\n", 1)[0]
    found = [line[3:] for line in production_card.splitlines() if line.startswith("## ")]
    assert found == [*SECTIONS[:1], *SECTIONS[2:], "Deployment validation"]  # ### Hyperparameters
    assert production_card.startswith(sandbox_card.rstrip())  # registration's sections intact
    assert "real pictures **37.50%**" in production_card  # the second deploy's figures
    assert "25.00%" not in production_card
    assert heading == f"# Model card: {NAME} version {carded['versions']['production'][1]}"

    deployed = carded["deployed"]["production"]
    assert deployed.startswith(carded["registered"]["production"].rstrip())
    assert deployed.count("## Deployment validation") == 1 and "**37.50%**" in deployed
    assert carded["deployed"]["sandbox"] == carded["registered"]["sandbox"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_html_card_shows_every_section_and_picture_in_chromium(carded, tmp_path):
    from playwright.sync_api import sync_playwright

    # The HTML alone, away from the PNG files beside it: it must carry its pictures.
    page_file = tmp_path / "model_card.html"
    shutil.copy(carded["files"]["production"] / "model_card.html", page_file)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            shown = [text.strip() for text in page.locator("h2, h3").all_text_contents()]
            images = page.eval_on_selector_all(
                "img", "all => all.map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            if screenshot := os.environ.get("MODEL_CARD_SCREENSHOT"):
                page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    assert shown == [*SECTIONS, "Deployment validation"]
    assert len(images) == len(carded["card"].picture_names())
    assert all(complete and width > 0 for _, complete, width in images), images
    assert images[0][0] == "Confusion matrix of the MNIST test set"
