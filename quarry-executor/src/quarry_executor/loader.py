"""Loading a user's script (runtime.md §14.1).

The script is imported with ``importlib.util.spec_from_file_location`` under a unique module name, with its
directory first on ``sys.path``. It must define ``async def run(ctx)``; the hooks ``prepare``, ``before_run``,
``after_run``, ``on_error``, ``before_terminal`` and ``cleanup`` are optional and may be sync or async.
Every problem raises :class:`~quarry_core.errors.ScriptLoadError` with one of the contract's reasons.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import os
import re
import sys
import types
from collections.abc import Callable
from typing import Any

import attrs

from quarry_core.errors import ScriptLoadError

__all__ = ["HOOK_NAMES", "LoadedScript", "call_maybe_async", "load_script"]

#: the optional hooks, in lifecycle order
HOOK_NAMES = ("prepare", "before_run", "after_run", "on_error", "before_terminal", "cleanup")

_counter = itertools.count(1)


@attrs.frozen
class LoadedScript:
    """A loaded script: its module, ``run`` and the hooks it defines."""

    path: str
    module: types.ModuleType
    run: Callable[..., Any]
    hooks: dict[str, Callable[..., Any]]

    def hook(self, name: str) -> Callable[..., Any] | None:
        return self.hooks.get(name)


def _module_name(path: str) -> str:
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0]) or "script"
    return f"quarry_script_{stem}_{next(_counter)}"


def load_script(path: str) -> LoadedScript:
    """Import the script at ``path`` (absolute) and check its exports."""
    if not os.path.isfile(path):
        raise ScriptLoadError(path, "file not found")
    directory = os.path.dirname(os.path.abspath(path))
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    name = _module_name(path)
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no loader for {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        raise ScriptLoadError(path, f"import failed: {type(exc).__name__}: {exc}") from exc
    run = getattr(module, "run", None)
    if run is None:
        raise ScriptLoadError(path, "missing run function")
    if not inspect.iscoroutinefunction(run):
        raise ScriptLoadError(path, 'run must be defined with "async def"')
    hooks: dict[str, Callable[..., Any]] = {}
    for hook in HOOK_NAMES:
        if not hasattr(module, hook):
            continue
        fn = getattr(module, hook)
        if not callable(fn):
            raise ScriptLoadError(path, f"{hook} hook is not callable")
        hooks[hook] = fn
    return LoadedScript(path=path, module=module, run=run, hooks=hooks)


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a hook that may be sync or async and return its result."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
