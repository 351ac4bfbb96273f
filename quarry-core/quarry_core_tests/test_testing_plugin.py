"""The opt-in fixtures work exactly as documented for third-party plugin authors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_fixtures_through_pytest_plugins(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["quarry_core.testing"]\n')
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent("""
        from quarry_core import hookimpl
        from quarry_core.registrations import NotificationAdapterPlugin

        class Mine:
            @hookimpl
            def quarry_notification_adapters(self):
                yield NotificationAdapterPlugin(name="chat", factory=lambda c: None, summary="chat")

        def test_registered(plugin_host, register_plugin):
            register_plugin(Mine(), "mine", distribution="quarry-adapter-chat")
            assert plugin_host.notification_adapter("chat").distribution == "quarry-adapter-chat"

        def test_clean_again(plugin_host):
            assert "chat" not in plugin_host.available("notification_adapter")
    """)
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_importing_testing_is_light() -> None:
    code = "import sys, quarry_core.testing, quarry_core.testing.fakes; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
