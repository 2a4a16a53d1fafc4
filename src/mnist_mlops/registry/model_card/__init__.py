"""The model card of a registered version: what it is, how it was made and how well it reads.

:mod:`.card` is its content (figures only, JSON), :mod:`.figures` computes the figures and
pictures from predictions, :mod:`.render` turns a card into Markdown, HTML and the registry
description (pure); :mod:`mnist_mlops.registry.model_card.store` keeps it beside a registered
version in a workspace.
"""

from mnist_mlops.registry.model_card.card import (
    ConfusedPair,
    Deployment,
    Gate,
    Lineage,
    MnistAccuracy,
    ModelCard,
    PictureAccuracy,
    StatusChange,
    VersionRef,
)

__all__ = [
    "ConfusedPair",
    "Deployment",
    "Gate",
    "Lineage",
    "MnistAccuracy",
    "ModelCard",
    "PictureAccuracy",
    "StatusChange",
    "VersionRef",
]
