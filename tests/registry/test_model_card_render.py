"""The model card's figures and rendering: pure functions, no server."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from mnist_mlops.registry.model_card import (
    Deployment,
    Gate,
    Lineage,
    ModelCard,
    PictureAccuracy,
    VersionRef,
)
from mnist_mlops.registry.model_card.figures import confusion_matrix, mnist_accuracy
from mnist_mlops.registry.model_card.render import (
    DESCRIPTION_LIMIT,
    CardRenderError,
    card_files,
    render_html,
    render_markdown,
    render_summary,
)

SECTIONS = [
    "Training",
    "Hyperparameters",
    "Data",
    "MNIST test accuracy",
    "Most confused pairs",
    "Real pictures",
    "Registration gate",
    "Lineage",
]
DEPLOYMENT = Deployment(
    validated_at="2026-11-25 17:00 UTC",
    test_accuracy=0.9912,
    min_test_accuracy=0.99,
    photo_accuracy=0.9412,
    min_photo_accuracy=0.9,
    photo_accuracy_by_category={"plot": 0.7, "ruled": 1.0},
)


@pytest.fixture(scope="module")
def mnist_figures(mnist_raw):
    """Figures of a made-up reader of 1,000 real MNIST test images: 4s read as 9 (7 times),
    7s read as 1 (3 times), the rest right."""
    images, labels = mnist_raw["test_images"][:1000], mnist_raw["test_labels"][:1000]
    predicted = labels.astype(np.int64).copy()
    fours, sevens = np.flatnonzero(labels == 4)[:7], np.flatnonzero(labels == 7)[:3]
    predicted[fours], predicted[sevens] = 9, 1
    misread = [(int(i), int(predicted[i])) for i in np.flatnonzero(predicted != labels)]
    return mnist_accuracy(confusion_matrix(labels, predicted), misread, (images, labels))


def make_card(mnist, **changes) -> ModelCard:
    values = {
        "name": "mnist-cnn",
        "strategy": "single_node",
        "architecture": "lean_cnn",
        "hyperparameters": {"epochs": 6, "batch_size": 128, "learning_rate": 0.003},
        "training_metrics": {"validation_accuracy": 0.9931, "images_per_s": 3900.0},
        "data_sha256": {"test_images": "ab" * 32, "train_images": "cd" * 32},
        "data_images": {"train": 59000, "validation": 1000, "test": 10000},
        "mnist": mnist,
        "pictures": PictureAccuracy(
            images=272, accuracy=0.949, by_category={"plot": 0.7, "drawn": 1.0, "margin": 0.95}
        ),
        "gate": Gate(
            decision="passed",
            min_test_accuracy=0.99,
            max_regression=0.002,
            production_version="2",
            production_test_accuracy=0.9931,
        ),
        "lineage": Lineage(
            sandbox=VersionRef(registry="http://sandbox:5000", version="3", run_id="run-s"),
            production=VersionRef(registry="http://production:5000", version="5", run_id="run-p"),
            git_commit="0123456789abcdef",
        ),
    }
    return ModelCard(**{**values, **changes})


def headings(markdown: str) -> list[str]:
    return re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)


def test_figures_come_from_the_confusion_matrix(mnist_figures):
    mnist, pictures = mnist_figures
    assert mnist.images == 1000 and mnist.accuracy == pytest.approx(0.99)
    assert [(p.true, p.read, p.count) for p in mnist.confused_pairs] == [(4, 9, 7), (7, 1, 3)]
    fours = mnist.confusion_matrix[4]
    assert fours[9] == 7 and mnist.per_digit[4] == round(fours[4] / sum(fours), 4) < 1
    assert mnist.per_digit[0] == 1.0
    # One row per pair, each up to four of its misread images, enlarged, dark on white.
    sheet = np.asarray(Image.open(io.BytesIO(pictures["confused_pairs.png"])))
    assert sheet.shape == (2 * (84 + 4), 130 + 4 * (84 + 4))
    first = sheet[:84, 130 : 130 + 84]  # the first misread 4
    assert first.min() == 0 and np.median(first) == 255
    assert set(pictures) == {"confusion_matrix.png", "confused_pairs.png"}
    assert Image.open(io.BytesIO(pictures["confusion_matrix.png"])).size == (520, 460)


def test_markdown_has_every_section_and_figure(mnist_figures):
    markdown = render_markdown(make_card(mnist_figures[0]))
    assert headings(markdown) == ["Model card: mnist-cnn version 5", *SECTIONS]
    assert "**99.00%** of 1,000 MNIST test images" in markdown
    assert "| 4 | 9 | 7 |\n| 7 | 1 | 3 |" in markdown
    assert "![Misread MNIST test images, one row per pair](confused_pairs.png)" in markdown
    assert "![Confusion matrix of the MNIST test set](confusion_matrix.png)" in markdown
    assert "| plot | 70.00% |" in markdown and "| learning_rate | 0.003 |" in markdown
    assert "`" + "ab" * 32 + "`" in markdown
    assert "| production | http://production:5000 | 5 | `run-p` |" in markdown
    assert "at most 0.002 below production version 2 (0.9931)" in markdown


def test_deployment_section_is_added_last_and_only_once(mnist_figures):
    card = make_card(mnist_figures[0])
    deployed = render_markdown(card.model_copy(update={"deployment": DEPLOYMENT}))
    assert headings(deployed) == [
        headings(render_markdown(card))[0],
        *SECTIONS,
        "Deployment validation",
    ]
    assert deployed.startswith(render_markdown(card).rstrip())  # registration's text untouched
    assert "MNIST test accuracy **99.12%** (at least 99.00% required)" in deployed


def test_html_is_self_contained_and_escapes_values(mnist_figures):
    mnist, pictures = mnist_figures
    card = make_card(mnist, strategy="<script>alert(1)</script>|x")
    html = render_html(card, pictures)
    assert "<script>" not in html and "&lt;script&gt;" in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 2
    assert all(source.startswith("data:image/png;base64,") for source in sources)
    assert html.count("<h2>") == len(SECTIONS) - 1 and "<table>" in html


def test_a_missing_picture_is_named_and_nothing_is_rendered(mnist_figures):
    mnist, pictures = mnist_figures
    partial = {k: v for k, v in pictures.items() if k != "confused_pairs.png"}
    with pytest.raises(CardRenderError, match=r"shows \['confused_pairs.png'\]"):
        card_files(make_card(mnist), partial)


def test_files_and_summary(mnist_figures):
    mnist, pictures = mnist_figures
    card = make_card(mnist, deployment=DEPLOYMENT)
    files = card_files(card, pictures)
    assert set(files) == {"model_card.json", "model_card.md", "model_card.html", *pictures}
    assert ModelCard.model_validate_json(files["model_card.json"]) == card
    summary = render_summary(card)
    assert len(summary) < DESCRIPTION_LIMIT / 2
    assert "MNIST test accuracy **99.00%**" in summary
    assert "weakest: plot 70.00%, margin 95.00%, drawn 100.00%" in summary
    assert "sandbox version 3 -> production version 5, commit 0123456789ab" in summary
    assert summary.count("## Deployment validation") == 1
