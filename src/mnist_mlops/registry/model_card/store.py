"""A model card beside its registered version: files in the version's run, under
``model_card/``, and the summary as the version's description.

Every file is a request to the workspace (and a basic-auth server checks the password on each
one): deploy rewrites only the text files, the pictures stay.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mnist_mlops.registry.model_card.card import Deployment, ModelCard, StatusChange
from mnist_mlops.registry.model_card.render import (
    card_files,
    render_deployment_summary,
    render_summary,
)
from mnist_mlops.workspaces import Workspace

logger = logging.getLogger(__name__)

CARD_FOLDER = "model_card"
CARD_JSON = "model_card.json"
TEXT_FILES = (CARD_JSON, "model_card.md", "model_card.html")


def version_run(workspace: Workspace, name: str, version: str) -> str:
    """The run holding the version's artifacts (in production, the push's run)."""
    with workspace.session() as client:
        return client.get_model_version(name, version).run_id


def has_card(workspace: Workspace, name: str, version: str) -> bool:
    """Whether the version's run holds a card."""
    with workspace.session() as client:
        run_id = client.get_model_version(name, version).run_id
        stored = client.list_artifacts(run_id, CARD_FOLDER)
    return any(Path(item.path).name == CARD_JSON for item in stored)


def publish(
    workspace: Workspace, name: str, version: str, card: ModelCard, pictures: dict[str, bytes]
) -> None:
    """Write the card and its pictures beside the version, its summary as the description."""
    _write(workspace, name, version, card_files(card, pictures), render_summary(card))


def fetch(
    workspace: Workspace, name: str, version: str
) -> tuple[ModelCard, dict[str, bytes]] | None:
    """The version's card and its pictures, or None when it has none."""
    with workspace.session() as client, tempfile.TemporaryDirectory() as folder:
        run_id = client.get_model_version(name, version).run_id
        if not client.list_artifacts(run_id, CARD_FOLDER):
            return None
        local = Path(client.download_artifacts(run_id, CARD_FOLDER, folder))
        card = ModelCard.model_validate_json((local / CARD_JSON).read_text())
        return card, {file: (local / file).read_bytes() for file in card.picture_names()}


def add_deployment(workspace: Workspace, name: str, version: str, deployment: Deployment) -> None:
    """Set deploy's section of the version's card and description, keeping registration's; a
    version registered without a card gets the section alone as its description."""
    _update(
        workspace, name, version, {"deployment": deployment}, render_deployment_summary(deployment)
    )


def add_status_change(workspace: Workspace, name: str, version: str, change: StatusChange) -> None:
    """Append a decision (a rollback, a rejected canary) to the version's card and description;
    a version registered without a card gets it as its description."""
    stored = fetch(workspace, name, version)
    history = [*(stored[0].history if stored else []), change]
    fallback = f"{change.at}: {change.status}: {change.reason}"
    _update(workspace, name, version, {"history": history}, fallback, stored)


def _update(
    workspace: Workspace,
    name: str,
    version: str,
    changes: dict[str, Any],
    fallback: str,
    stored: tuple[ModelCard, dict[str, bytes]] | None = None,
) -> None:
    """Rewrite the card's text files and description with ``changes``; without a card, set
    ``fallback`` as the description."""
    stored = stored or fetch(workspace, name, version)
    if stored is None:
        logger.warning("%s version %s has no model card: description only", name, version)
        with workspace.session() as client:
            client.update_model_version(name, version, description=fallback)
        return
    card, pictures = stored
    card = card.model_copy(update=changes)
    files = card_files(card, pictures)
    _write(workspace, name, version, {f: files[f] for f in TEXT_FILES}, render_summary(card))


def _write(
    workspace: Workspace, name: str, version: str, files: dict[str, bytes], description: str
) -> None:
    """Upload the files (rendered beforehand: a rendering error writes nothing), then set the
    description."""
    with workspace.session() as client, tempfile.TemporaryDirectory() as folder:
        for file, content in files.items():
            (Path(folder) / file).write_bytes(content)
        client.log_artifacts(client.get_model_version(name, version).run_id, folder, CARD_FOLDER)
        client.update_model_version(name, version, description=description)
    logger.info("Model card of %s version %s written in %s", name, version, workspace.name)
