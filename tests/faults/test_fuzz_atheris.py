"""Coverage-guided fuzzing (atheris / libFuzzer) of the frame decoder and the CBOR envelope validation, bounded to
a few seconds inside pytest (issue 11 item 4). The target is ``fuzz_frames_target.py`` beside this file; libFuzzer
ends its process when done, so it runs as a subprocess. Any input must give a classified error
(``FrameDecodeError`` / ``StreamError`` / ``VersionMismatchError``) or a valid frame that round-trips; another
exception is a crash (non-zero exit, the input saved under ``tmp_path``), a slow input a libFuzzer timeout.

Hypothesis covers the same ground inside the ingestion loop (``quarry-core/quarry_core_tests/test_ingest_fuzz.py``);
this adds coverage feedback, which finds inputs random generation misses. atheris ships wheels for Linux x86_64
only (the dev group installs it there); elsewhere the test is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import ROOT

pytest.importorskip("atheris")

TARGET = Path(__file__).with_name("fuzz_frames_target.py")
SECONDS = 6


def _fuzz(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(TARGET),
            str(tmp_path / "corpus"),
            f"-max_total_time={SECONDS}",
            "-timeout=5",  # one input taking longer is a hang
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
    )


def test_fuzzed_frames_give_only_classified_errors_or_valid_frames(tmp_path: Path) -> None:
    proc = _fuzz(tmp_path, "-seed=1")
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert proc.returncode == 0 and crashes == [], proc.stderr[-4000:]
    runs = int(proc.stderr.split("stat::number_of_executed_units:")[1].split()[0])
    assert runs > 1000, proc.stderr[-2000:]  # really fuzzed, not just the seed corpus
    corpus = list((tmp_path / "corpus").iterdir())
    assert len(corpus) > 40, "coverage feedback grew the corpus beyond the seeds"


def test_the_harness_reports_an_unclassified_exception_as_a_crash(tmp_path: Path) -> None:
    """The harness is not vacuous: an input whose frame raises an unclassified error fails the run."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sys, runpy\n"
        "sys.argv = [sys.argv[0], *sys.argv[1:]]\n"
        "from quarry_core.protocol import frames\n"
        "real = frames.parse_executor_frame\n"
        "def broken(d, **kw):\n"
        "    frame = real(d, **kw)\n"
        "    if getattr(frame, 'type', None) == 'checkpoint':\n"
        "        raise KeyError('planted')\n"
        "    return frame\n"
        "frames.parse_executor_frame = broken\n"
        f"runpy.run_path({str(TARGET)!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, str(bad), str(tmp_path / "corpus"), "-runs=2000", f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "KeyError: 'planted'" in proc.stdout + proc.stderr, proc.stderr[-3000:]  # the traceback goes to stdout
    assert any(p.name.startswith("crash-") for p in tmp_path.iterdir())


def test_a_timestamp_before_year_1000_round_trips() -> None:
    """Found by the fuzzer: strftime("%Y") did not zero-pad years below 1000, so an accepted ts re-encoded as
    one the decoder rejects."""
    from quarry_core.protocol.values import normalise_ts

    once = normalise_ts("0226-01-01t00:00:00.000Z")
    assert once == "0226-01-01T00:00:00.000Z"
    assert normalise_ts(once) == once
