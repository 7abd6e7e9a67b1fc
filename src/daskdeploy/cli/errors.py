"""How commands fail: exit statuses, the usage-error exception, and API errors turned into them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["BAD_INPUT_EXIT", "INTERRUPTED_EXIT", "UserError", "api_call"]

#: Exit status of a mistake in the command line or configuration: nothing was started.
BAD_INPUT_EXIT = 2
#: Exit status after Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT = 130


class UserError(click.ClickException):
    """A mistake in the command line or configuration: one message, exit status 2."""

    exit_code = BAD_INPUT_EXIT


def api_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the Python API, turning its errors into one ``Error:`` line and an exit status.

    A :class:`~daskdeploy.DeploymentError` (the input was fine; starting failed) exits
    with status 1, any other :class:`~daskdeploy.DaskDeployError` with status 2.
    """
    from ..errors import DaskDeployError, DeploymentError

    try:
        return function(*args, **kwargs)
    except DeploymentError as exc:  # the input was fine; starting failed
        raise click.ClickException(str(exc)) from None
    except DaskDeployError as exc:
        raise UserError(str(exc)) from None
