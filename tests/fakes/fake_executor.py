"""A fake executor for fault tests: reads the run request like the real one and misbehaves on purpose.

The runtime starts ``<executor-python> -m quarry_executor``; tests pass a wrapper around this file as
``--executor-python``, and pick the misbehaviour with ``FAKE_SCENARIO``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import uuid

from quarry_core.protocol import CONTRACT_VERSION, encode_frame, utc_now_ts


def main() -> int:
    request = json.loads(sys.stdin.buffer.readline())
    out = sys.stdout.buffer
    scenario = os.environ.get("FAKE_SCENARIO", "ok")
    seq = 0
    gate = os.environ.get("FAKE_START_GATE")  # concurrency tests: say "ready", then wait until the gate file exists
    if gate:
        open(f"{gate}.{os.getpid()}.ready", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)

    def event(etype: str, payload: dict, **over: object) -> bytes:
        nonlocal seq
        seq += 1
        env = {
            "contract_version": CONTRACT_VERSION,
            "event_id": str(uuid.uuid4()),
            "run_id": request["run_id"],
            "seq": seq,
            "type": etype,
            "ts": utc_now_ts(),
            "payload": payload,
            "attempt": request["attempt"],
        }
        env.update(over)
        return encode_frame(env)

    def item(i: int, **over: object) -> bytes:
        return event("item", {"item_type": "row", "data": {"i": i}}, **over)

    pause = float(os.environ.get("FAKE_ITEM_PAUSE", "0"))  # seconds between items, each flushed on its own
    for i in range(int(os.environ.get("FAKE_ITEMS", "3"))):  # FAKE_ITEMS: more items for load tests
        out.write(item(i))
        if pause:
            out.flush()
            time.sleep(pause)
    out.flush()
    if scenario == "ok":
        out.write(event("run_complete", {}))
        out.write(encode_frame({"type": "run_result", "run_id": request["run_id"], "outcome": {"status": "completed"}}))
    elif scenario == "truncated":
        frame = item(3)
        out.write(frame[: len(frame) // 2])
    elif scenario == "oversized":
        out.write(struct.pack(">I", 16 * 1024 * 1024))
        out.write(b"\x00" * 64)
    elif scenario == "garbage":
        out.write(struct.pack(">I", 5) + b"\xff\xfe\xfd\xfc\xfb")
    elif scenario == "trailing":  # a good item frame whose length also covers two bytes after its map
        body = item(3)[4:] + b"\x00\x00"
        out.write(struct.pack(">I", len(body)) + body)
    elif scenario == "version":
        out.write(item(3, contract_version="2.0.0"))
    elif scenario == "seq_gap":
        seq += 1
        out.write(item(4))
    elif scenario == "wrong_run_id":
        out.write(item(3, run_id="someone-else"))
    elif scenario == "clean_exit_no_terminal":
        pass
    elif scenario == "after_terminal":
        out.write(event("run_complete", {}))
        out.write(item(9))
    out.flush()
    return int(os.environ.get("FAKE_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
