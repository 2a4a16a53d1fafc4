"""Send images to the scoring server and print each digit and its confidence.

python -m mnist_mlops.serving.client photo.jpg scan.png --url http://127.0.0.1:5001 --token T
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click


def predict_files(paths: list[Path], url: str, token: str | None = None, timeout_s: float = 30):
    """POST the images as ``dataframe_records`` and return the server's predictions."""
    records = [{"image": base64.b64encode(path.read_bytes()).decode()} for path in paths]
    request = urllib.request.Request(
        url.rstrip("/") + "/invocations",
        data=json.dumps({"dataframe_records": records}).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)["predictions"]


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body: Any = json.load(error)
        return body.get("message", str(body))
    except ValueError:
        return error.reason


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--url", required=True, help="e.g. http://127.0.0.1:5001")
@click.option("--token", envvar="MNIST_SERVING_TOKEN", help="default: $MNIST_SERVING_TOKEN")
def main(images: tuple[Path, ...], url: str, token: str | None) -> None:
    """Ask the scoring server which digit each image (PNG or JPEG) is."""
    missing = [str(path) for path in images if not path.is_file()]
    if missing:
        _fail(f"no such file: {', '.join(missing)}", code=2)
    try:
        predictions = predict_files(list(images), url, token)
    except urllib.error.HTTPError as error:
        hint = " (pass --token or set MNIST_SERVING_TOKEN)" if error.code == 401 else ""
        _fail(f"the server answered {error.code}: {_error_message(error)}{hint}")
    except urllib.error.URLError as error:
        _fail(f"cannot reach {url}: {error.reason}")
    for path, prediction in zip(images, predictions, strict=True):
        digit = prediction["digit"]
        if digit is None:  # the other pictures are still read
            click.echo(f"{path}: {prediction.get('error', 'no digit found')}")
        else:
            click.echo(f"{path}: {digit} ({prediction['probabilities'][digit]:.1%})")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
