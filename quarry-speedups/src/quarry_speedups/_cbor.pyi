from collections.abc import Callable
from typing import Any

MAX_DEPTH: int
EVENT_SLOTS: tuple[str, ...]

def decode_json_map(body: object) -> dict[str, Any] | None: ...

class EventDecoder:
    def __init__(
        self,
        event_cls: type,
        *,
        version_cell: list[Any],
        ts_cell: list[str],
        is_canonical_ts: Callable[[str], bool],
        event_types: frozenset[str],
        max_body: int,
    ) -> None: ...
    def __call__(self, body: object) -> Any: ...
    def event_at(self, buf: bytes, pos: int) -> Any: ...
    def take_items(
        self, buf: bytes, pos: int, out: list[Any], limit: int, last_seq: int, run_id: str, attempt: int, lineage: Any
    ) -> int: ...
