"""``tiers secrets run ENV -- CMD``: a command with a tier's secrets in its environment.

The values go into the environment of the command, which replaces tiers (its exit code
is the command's); they are never written to a file or put in its arguments.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

from tiers.errors import UsageError

__all__ = ["exec_with"]


def exec_with(values: dict[str, str], argv: list[str]) -> NoReturn:
    """Replace this process with ``argv``, its environment this one's plus ``values``."""
    if not argv:
        raise UsageError("give the command to run after --, e.g. tiers secrets run staging -- env")
    program = shutil.which(argv[0])
    if program is None:
        raise UsageError(f"{argv[0]}: command not found")
    os.execve(program, argv, {**os.environ, **values})
