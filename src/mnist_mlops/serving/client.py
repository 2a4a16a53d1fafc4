"""Send images to the scoring server and print each digit and its confidence.

python -m mnist_mlops.serving.client photo.jpg scan.png --url http://127.0.0.1:5001 --token T
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ask the scoring server which digit each image is."
    )
    parser.add_argument("images", nargs="+", type=Path, help="PNG or JPEG files")
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:5001")
    parser.add_argument("--token", default=os.environ.get("MNIST_SERVING_TOKEN"))
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        predictions = predict_files(args.images, args.url, args.token)
    except urllib.error.HTTPError as error:
        hint = " (pass --token or set MNIST_SERVING_TOKEN)" if error.code == 401 else ""
        print(
            f"error: the server answered {error.code}: {_error_message(error)}{hint}",
            file=sys.stderr,
        )
        return 1
    except urllib.error.URLError as error:
        print(f"error: cannot reach {args.url}: {error.reason}", file=sys.stderr)
        return 1
    for path, prediction in zip(args.images, predictions, strict=True):
        digit = prediction["digit"]
        print(f"{path}: {digit} ({prediction['probabilities'][digit]:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
