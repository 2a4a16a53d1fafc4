"""How a run ends when it decides not to do its work: a decision, not a crash.

Each is a ``click.ClickException``: ``kedro run`` (and ``python -m mnist_mlops``) exits with the
class's own code and one line, with no Python traceback; the run summary, printed before it,
says what happened and why. A crash (any other exception) keeps its traceback and exit code 1.
Documented in ``docs/operations.md``; the workflows rely on the codes.
"""

from __future__ import annotations

from typing import IO, Any

import click


class RunStopped(click.ClickException):
    """The run stopped on purpose; ``exit_code`` says why."""

    exit_code = 3

    def show(self, file: IO[Any] | None = None) -> None:
        first_line = self.format_message().splitlines()[0]
        click.echo(f"Stopped (exit code {self.exit_code}): {first_line}", file=file, err=True)


class Rejected(RunStopped):
    """A candidate failed the registration gate or deploy's validation: nothing was registered
    or promoted."""

    exit_code = 3


class NothingToRollBack(RunStopped):
    """A rollback was asked for, but no version holds ``previous-production``."""

    exit_code = 4


class NoSuchVersion(RunStopped):
    """``deployment.version`` names a version the production registry does not have."""

    exit_code = 2  # click's own code for a bad command line
