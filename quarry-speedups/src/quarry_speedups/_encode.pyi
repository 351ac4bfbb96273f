MAX_DEPTH: int

def encode_json_map(obj: object) -> bytes | None: ...
def encode_json_frame(obj: object) -> bytes | None: ...
def encode_event_frame(
    cv: object,
    event_id: object,
    run_id: object,
    seq: object,
    etype: object,
    ts: object,
    payload: object,
    attempt: object,
    lineage: object,
) -> bytes | None: ...
def flat_json_map(d: object) -> bool: ...
def uuid4_texts(raw: bytes) -> list[str]: ...
