"""A model card beside its registered version: files in the version's run, under
``model_card/``, and the summary as the version's description."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from mnist_mlops.model_card.card import Deployment, ModelCard
from mnist_mlops.model_card.render import card_files, render_deployment_summary, render_summary
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)

CARD_FOLDER = "model_card"
CARD_JSON = "model_card.json"


def version_run(workspace: Workspace, name: str, version: str) -> str:
    """The run holding the version's artifacts (in production, the push's run)."""
    with workspace.session() as client:
        return client.get_model_version(name, version).run_id


def publish(workspace: Workspace, name: str, version: str, card: ModelCard, pictures) -> None:
    """Write the card beside the version, replacing any card it had.

    A card without a deployment section keeps the one already stored: that section is the
    deploy pipeline's, and registering the same model again must not erase it. Everything is
    rendered before anything is written.
    """
    if card.deployment is None:
        stored = fetch(workspace, name, version)
        if stored is not None and stored[0].deployment is not None:
            card = card.model_copy(update={"deployment": stored[0].deployment})
    files, description = card_files(card, pictures), render_summary(card)
    with workspace.session() as client, tempfile.TemporaryDirectory() as folder:
        for file, content in files.items():
            (Path(folder) / file).write_bytes(content)
        client.log_artifacts(client.get_model_version(name, version).run_id, folder, CARD_FOLDER)
        client.update_model_version(name, version, description=description)
    logger.info("Model card of %s version %s written in %s", name, version, workspace.name)


def fetch(
    workspace: Workspace, name: str, version: str
) -> tuple[ModelCard, dict[str, bytes]] | None:
    """The version's card and its pictures, or None when it has none."""
    with workspace.session() as client, tempfile.TemporaryDirectory() as folder:
        run_id = client.get_model_version(name, version).run_id
        stored = {Path(item.path).name for item in client.list_artifacts(run_id, CARD_FOLDER)}
        if CARD_JSON not in stored:
            return None
        local = Path(client.download_artifacts(run_id, CARD_FOLDER, folder))
        card = ModelCard.model_validate_json((local / CARD_JSON).read_text())
        return card, {file: (local / file).read_bytes() for file in card.picture_names()}


def add_deployment(workspace: Workspace, name: str, version: str, deployment: Deployment) -> None:
    """Set the deploy section of the version's card and description, keeping the rest; a
    version registered without a card gets the section alone as its description."""
    stored = fetch(workspace, name, version)
    if stored is None:
        logger.warning(
            "%s version %s has no model card: its description is deploy's alone", name, version
        )
        with workspace.session() as client:
            client.update_model_version(
                name, version, description=render_deployment_summary(deployment)
            )
        return
    card, pictures = stored
    publish(workspace, name, version, card.model_copy(update={"deployment": deployment}), pictures)
