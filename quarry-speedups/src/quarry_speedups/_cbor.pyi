from typing import Any

MAX_DEPTH: int

def decode_json_map(body: object) -> dict[str, Any] | None: ...
