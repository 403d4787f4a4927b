"""A booby-trapped process for sandbox tests: what a simulated tool must never touch raises."""

from __future__ import annotations

import builtins
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def booby_trapped(touched: list[str], *, library_reads: bool = False) -> Iterator[None]:
    """Filesystem, network, processes and file removal raise (and are noted in ``touched``) inside the block.

    ``library_reads``: reading files of the installed libraries stays allowed (Inspect reads its model-info
    tables while a model answers); a write, or a read anywhere else, still raises.
    """

    def forbid(name: str) -> Callable[..., Any]:
        def raiser(*args: Any, **kwargs: Any) -> Any:
            touched.append(name)
            raise AssertionError(f"a simulated tool used {name}")

        return raiser

    real_open = builtins.open
    libraries = (os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix))

    def open_library_file(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        # Inspect reads its own model-info tables while a model answers: reading the installed libraries is
        # allowed, anything else (a write, or a read elsewhere) is not
        path = os.path.realpath(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
        if library_reads and mode.startswith("r") and "+" not in mode and path.startswith(libraries):
            return real_open(file, mode, *args, **kwargs)
        return forbid("open")(file, mode)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", open_library_file)
        patch.setattr(socket, "socket", forbid("socket"))
        patch.setattr(socket, "create_connection", forbid("create_connection"))
        patch.setattr(subprocess, "Popen", forbid("subprocess"))
        patch.setattr(os, "system", forbid("os.system"))
        patch.setattr(os, "remove", forbid("os.remove"))
        patch.setattr(os, "unlink", forbid("os.unlink"))
        patch.setattr(os, "rename", forbid("os.rename"))
        patch.setattr(os, "rmdir", forbid("os.rmdir"))
        yield
