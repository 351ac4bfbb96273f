"""The executor's browser (runtime.md §11, proxy.md §9): discovery, launch or CDP attach, per-run contexts.

Executable discovery order (D13): ``QUARRY_BROWSER_EXECUTABLE`` (must be executable) → Playwright-managed
Chromium → ``/usr/lib/chromium/chromium-headless-shell``, ``/usr/lib/chromium/chromium`` (real binaries, not
the ``/usr/bin/chromium`` wrapper) → ``chromium-headless-shell``, ``chromium``, ``chromium-browser``,
``google-chrome-stable``, ``google-chrome`` on ``PATH``.

Playwright is imported only inside :meth:`BrowserSession.open`, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from quarry_core.errors import ScriptCrashed
from quarry_core.sdk import RedactedProxy

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright

__all__ = [
    "PATH_NAMES",
    "SYSTEM_PATHS",
    "BrowserNotFoundError",
    "BrowserSession",
    "describe_browser",
    "find_browser_executable",
    "launch_options",
    "locate_browser_executable",
    "managed_executable_path",
    "playwright_proxy",
    "redact_proxy",
    "use_node_compile_cache",
]

SYSTEM_PATHS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chromium")
PATH_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome-stable", "google-chrome")

#: flags for a machine that must not phone home (and usually cannot)
_QUIET_ARGS = ("--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync")


class BrowserNotFoundError(ScriptCrashed):
    """No usable Chromium executable."""


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_browser_executable(
    env: Mapping[str, str] | None = None,
    managed_path: str | None = None,
    *,
    system_paths: Sequence[str] = SYSTEM_PATHS,
    path_names: Sequence[str] = PATH_NAMES,
    which: Callable[..., str | None] = shutil.which,
) -> str:
    """The Chromium executable to launch, or :class:`BrowserNotFoundError` naming everything tried.

    ``managed_path`` is Playwright's ``chromium.executable_path`` (``None`` when unknown).
    """
    return locate_browser_executable(env, managed_path, system_paths=system_paths, path_names=path_names, which=which)[
        0
    ]


def locate_browser_executable(
    env: Mapping[str, str] | None = None,
    managed_path: str | None = None,
    *,
    system_paths: Sequence[str] = SYSTEM_PATHS,
    path_names: Sequence[str] = PATH_NAMES,
    which: Callable[..., str | None] = shutil.which,
) -> tuple[str, str]:
    """Like :func:`find_browser_executable`, with how it was found: ``env``, ``playwright`` or ``system``."""
    env = os.environ if env is None else env
    explicit = env.get("QUARRY_BROWSER_EXECUTABLE")
    if explicit:
        if _is_executable(explicit):
            return explicit, "env"
        raise BrowserNotFoundError(f"QUARRY_BROWSER_EXECUTABLE is not an executable file: {explicit}")
    tried: list[str] = []
    if managed_path:
        if _is_executable(managed_path):
            return managed_path, "playwright"
        tried.append(managed_path)
    for path in system_paths:
        if _is_executable(path):
            return path, "system"
        tried.append(path)
    search_path = env.get("PATH", os.defpath)
    for name in path_names:
        found = which(name, path=search_path)
        if found:
            return found, "system"
        tried.append(name)
    raise BrowserNotFoundError(
        f"no Chromium executable found (tried: {', '.join(tried)}); "
        'run "playwright install chromium" or install chromium-headless-shell'
    )


def managed_executable_path() -> str | None:
    """Where Playwright's own Chromium is (installed or not), asked of its driver outside an event loop (a few
    hundred ms); ``None`` when Playwright cannot tell."""
    try:
        from playwright.sync_api import sync_playwright

        use_node_compile_cache()
        with sync_playwright() as pw:
            return str(pw.chromium.executable_path)
    except Exception:
        return None


def describe_browser(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``quarry debug browser`` reports of this executor's browser: ``executable``, ``found_via``
    (``env``, ``playwright`` or ``system``) and ``version`` (``<executable> --version``), or ``error``.

    Asks Playwright for its managed Chromium's path (starting its driver, not a browser) unless
    ``QUARRY_BROWSER_EXECUTABLE`` decides.
    """
    env = os.environ if env is None else env
    managed = None if env.get("QUARRY_BROWSER_EXECUTABLE") else managed_executable_path()
    info: dict[str, Any] = {"executable": None, "found_via": None, "version": None}
    try:
        info["executable"], info["found_via"] = locate_browser_executable(env, managed)
    except BrowserNotFoundError as exc:
        info["error"] = str(exc)
        return info
    try:
        proc = subprocess.run(
            [info["executable"], "--version"], capture_output=True, text=True, timeout=30, env=dict(env)
        )
        info["version"] = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else None
        if info["version"] is None:
            tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            info["error"] = f"{info['executable']} --version failed: {tail}"
    except (OSError, subprocess.SubprocessError) as exc:
        info["error"] = f"{info['executable']} --version failed: {exc}"
    return info


def launch_options(executable: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``chromium.launch``."""
    env = os.environ if env is None else env
    # Chromium refuses to start its sandbox as root, so running as uid 0 (containers, CI) implies --no-sandbox
    # just as QUARRY_NO_SANDBOX=1 does.
    no_sandbox = env.get("QUARRY_NO_SANDBOX") == "1" or (hasattr(os, "geteuid") and os.geteuid() == 0)
    args = ["--disable-dev-shm-usage"]
    if no_sandbox:
        args.append("--no-sandbox")
    args.extend(_QUIET_ARGS)
    return {
        "executable_path": executable,
        "headless": env.get("QUARRY_HEADLESS") != "0",
        "args": args,
        # Playwright adds --no-sandbox itself unless asked for the sandbox; the flag above is the only source
        "chromium_sandbox": not no_sandbox,
        "handle_sigint": False,
        "handle_sigterm": False,
        "handle_sighup": False,
    }


def playwright_proxy(proxy: Mapping[str, Any]) -> dict[str, str]:
    """A run-request proxy as Playwright's ``proxy=`` option (credential keys only when set)."""
    d = {"server": f"{proxy['protocol']}://{proxy['host']}:{proxy['port']}"}
    if proxy.get("username"):
        d["username"] = str(proxy["username"])
    if proxy.get("password"):
        d["password"] = str(proxy["password"])
    return d


def redact_proxy(proxy: Mapping[str, Any] | None) -> RedactedProxy | None:
    if proxy is None:
        return None
    return RedactedProxy(
        protocol=str(proxy["protocol"]),
        host=str(proxy["host"]),
        port=int(proxy["port"]),
        username=proxy.get("username") or None,
    )


def use_node_compile_cache(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Point ``NODE_COMPILE_CACHE`` (inherited by Playwright's Node driver) at ``<cache>/quarry/node-compile-cache``
    unless it is set already; return the directory in use, or ``None`` without a cache home.

    Node keeps the compiled code of the driver's modules there, checked against their contents: a driver then
    starts with about 0.09 CPU-seconds less (0.38 → 0.29 s measured), once per executor process. An unwritable
    directory only means no cache (Node says nothing)."""
    env = os.environ if environ is None else environ
    current = env.get("NODE_COMPILE_CACHE")
    if current is not None:
        return current or None
    base = env.get("XDG_CACHE_HOME") or (os.path.join(env["HOME"], ".cache") if env.get("HOME") else "")
    if not base:
        return None
    directory = os.path.join(base, "quarry", "node-compile-cache")
    env["NODE_COMPILE_CACHE"] = directory
    return directory


class BrowserSession:
    """Playwright plus one browser: launched (owned, closed at the end) or attached over CDP (never closed)."""

    def __init__(self, playwright: Playwright, browser: Browser, *, owned: bool) -> None:
        self.playwright = playwright
        self.browser = browser
        self.owned = owned

    @classmethod
    async def open(cls, ws_endpoint: str | None = None, env: Mapping[str, str] | None = None) -> BrowserSession:
        from playwright.async_api import async_playwright

        use_node_compile_cache()
        pw = await async_playwright().start()
        try:
            if ws_endpoint:
                browser = await pw.chromium.connect_over_cdp(ws_endpoint)
                return cls(pw, browser, owned=False)
            try:
                managed: str | None = pw.chromium.executable_path
            except Exception:
                managed = None
            executable = find_browser_executable(env, managed)
            browser = await pw.chromium.launch(**launch_options(executable, env))
            return cls(pw, browser, owned=True)
        except BaseException:
            try:
                await pw.stop()
            except Exception:
                pass
            raise

    async def new_page(self, proxy: Mapping[str, Any] | None) -> tuple[BrowserContext, Page]:
        """A fresh context (with the run's proxy) and a page in it."""
        options: dict[str, Any] = {}
        if proxy is not None:
            options["proxy"] = playwright_proxy(proxy)
        context = await self.browser.new_context(**options)
        try:
            page = await context.new_page()
        except BaseException:
            await context.close()
            raise
        return context, page

    async def discard(self, context: BrowserContext, page: Page) -> None:
        """Close a run's page and context at its end (a warm executor's pooled session does it in the background)."""
        try:
            await page.close()
            await context.close()
        except Exception:
            pass

    async def close(self) -> None:
        """Close a launched browser; for an attached one only disconnect. Then stop Playwright.

        On a browser attached over CDP, Playwright's ``close`` drops this connection (and the contexts made
        through it) and leaves the browser running; it also deletes the temporary ``playwright-artifacts-*``
        folder the driver made for the connection, which stopping the driver alone leaves behind in the
        temporary directory, one per run that attached to a reuse server.
        """
        try:
            if self.owned:
                await self.browser.close()
            else:
                with contextlib.suppress(Exception):
                    await self.browser.close()
        finally:
            await self.playwright.stop()
