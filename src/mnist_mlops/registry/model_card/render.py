"""A model card as Markdown, as self-contained HTML, and as a registry description (pure).

The Markdown is the card (Jinja2 templates in ``templates/``); the HTML is that Markdown
rendered by markdown-it with every picture inlined as a data URI, so that the file shows the
same wherever it is opened: downloaded alone, or in MLflow's artifact viewer, which cannot
resolve a relative link. The description is a few lines: MLflow stores at most 5,000 characters.
"""

from __future__ import annotations

import base64

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from mnist_mlops.registry.model_card.card import (
    CONFUSED_PAIRS_PICTURE,
    CONFUSION_MATRIX_PICTURE,
    Deployment,
    ModelCard,
)

DESCRIPTION_LIMIT = 5000  # characters: MLflow's model version description column
WEAKEST_CATEGORIES = 3  # named in the description

_TEMPLATES = Environment(
    loader=PackageLoader("mnist_mlops.registry.model_card"),
    autoescape=select_autoescape(["html"]),  # Markdown is escaped by markdown-it instead
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TEMPLATES.filters.update(
    pct=lambda value: f"{value:.2%}",
    number=lambda value: f"{value:.4g}" if isinstance(value, float) else str(value),
    # A value inside a Markdown table: a "|" would end its cell.
    cell=lambda value: str(value).replace("|", "\\|"),
)
# Raw HTML in a value is shown as text, never run: the card holds configuration values.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


class CardRenderError(ValueError):
    """The card cannot be rendered as asked (a picture it shows is missing)."""


def render_markdown(card: ModelCard) -> str:
    """The whole card in Markdown; pictures are linked as files beside it."""
    return _TEMPLATES.get_template("model_card.md.j2").render(
        card=card,
        confusion_matrix_picture=CONFUSION_MATRIX_PICTURE,
        confused_pairs_picture=CONFUSED_PAIRS_PICTURE,
        full=True,
    )


def render_html(card: ModelCard, pictures: dict[str, bytes]) -> str:
    """The whole card as one HTML page, its pictures inlined.

    Raises:
        CardRenderError: naming a picture the card shows that ``pictures`` lacks.
    """
    missing = [name for name in card.picture_names() if name not in pictures]
    if missing:
        raise CardRenderError(
            f"The model card shows {missing} but only {sorted(pictures)} were given"
        )
    tokens = _MARKDOWN.parse(render_markdown(card))
    for token in tokens:
        for child in token.children or ():
            if child.type == "image":
                child.attrSet("src", _data_uri(pictures[str(child.attrGet("src"))]))
    body = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return _TEMPLATES.get_template("model_card.html.j2").render(
        title=f"Model card: {card.name}", body=Markup(body)
    )


def render_summary(card: ModelCard) -> str:
    """The registry description: the headline figures, the gate, the lineage, and deploy's
    section when there is one."""
    weakest = sorted(card.pictures.by_category.items(), key=lambda item: item[1])
    return _fit(
        _TEMPLATES.get_template("summary.md.j2").render(
            card=card, weakest=weakest[:WEAKEST_CATEGORIES], full=False
        )
    )


def render_deployment_summary(deployment: Deployment) -> str:
    """Deploy's section alone: the description of a version registered without a card."""
    return _fit(
        _TEMPLATES.get_template("deployment.md.j2").render(deployment=deployment, full=False)
    )


def card_files(card: ModelCard, pictures: dict[str, bytes]) -> dict[str, bytes]:
    """Every file of the card: JSON (its figures), Markdown, HTML and the pictures it shows."""
    return {
        "model_card.json": card.model_dump_json(indent=2).encode(),
        "model_card.md": render_markdown(card).encode(),
        "model_card.html": render_html(card, pictures).encode(),
        **{name: pictures[name] for name in card.picture_names()},
    }


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _fit(description: str) -> str:
    if len(description) > DESCRIPTION_LIMIT:  # a guard: the templates stay far below it
        raise CardRenderError(
            f"The description has {len(description)} characters, more than MLflow's "
            f"{DESCRIPTION_LIMIT}: shorten templates/summary.md.j2"
        )
    return description
