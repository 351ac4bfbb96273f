"""``--tui`` for ``inspect`` and ``stats`` (CONTRACT_CLI §9): the command's JSON payload as a navigable tree in a
Textual app on the alternate screen. It shows exactly that payload, fetches nothing else, and quits on ``q`` or
Ctrl+C (exit 0). Textual is the optional ``tui`` extra; it is imported only here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["PayloadApp", "show"]


def _label(key: str, value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{key} {{{len(value)} keys}}"
    if isinstance(value, list):
        return f"{key} [{len(value)} items]"
    if value is None:
        return f"{key}: null"
    return f"{key}: {value}"


def _build() -> Any:
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.widgets import Footer, Header, Tree
    from textual.widgets.tree import TreeNode

    def add(node: TreeNode[Any], key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            child = node.add(_label(key, value), expand=len(value) <= 12)
            for k, v in value.items():
                add(child, str(k), v)
        elif isinstance(value, list):
            child = node.add(_label(key, value), expand=len(value) <= 12)
            for i, v in enumerate(value):
                add(child, f"[{i}]", v)
        else:
            node.add_leaf(_label(key, value))

    class _PayloadApp(App[int]):
        TITLE = "quarry"
        BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
            Binding("q", "quit_ok", "Quit"),
            Binding("ctrl+c", "quit_ok", "Quit", priority=True),
        ]

        def __init__(self, payload: Any, title: str) -> None:
            super().__init__()
            self.payload = payload
            self.sub_title = title

        def compose(self) -> ComposeResult:
            yield Header()
            tree: Tree[Any] = Tree(self.sub_title or "result", id="payload")
            tree.root.expand()
            if isinstance(self.payload, Mapping):
                for k, v in self.payload.items():
                    add(tree.root, str(k), v)
            elif isinstance(self.payload, list):
                for i, v in enumerate(self.payload):
                    add(tree.root, f"[{i}]", v)
            else:
                tree.root.add_leaf(str(self.payload))
            yield tree
            yield Footer()

        def action_quit_ok(self) -> None:
            self.exit(0)

    return _PayloadApp


class _Lazy:
    cls: Any = None


def PayloadApp(payload: Any, title: str = "") -> Any:
    """The Textual app showing ``payload`` (built on first use so importing this module needs no Textual)."""
    if _Lazy.cls is None:
        _Lazy.cls = _build()
    return _Lazy.cls(payload, title)


def show(payload: Any, *, title: str = "") -> None:
    """Run the TUI until ``q`` or Ctrl+C."""
    PayloadApp(payload, title).run()
