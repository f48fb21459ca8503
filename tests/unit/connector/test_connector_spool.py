"""The relay spool: FIFO on disk across restarts, no partial entry after a crash, a size cap
that blocks the producer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from connector.spool import Spool, SpoolClosedError

ROOT = Path(__file__).resolve().parents[3]


def test_entries_come_out_in_order_across_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 30)
    for seq in range(12):
        spool.put({"job_id": "rjb_a" if seq < 6 else "rjb_b", "seq": seq}, f"body {seq}".encode())
    first = spool.peek(timeout=0)
    assert first is not None
    assert first.meta["seq"] == 0
    spool.pop(first)
    assert spool.depth == 11

    reopened = Spool(tmp_path, 1 << 30)
    assert reopened.depth == 11
    assert reopened.total_bytes == spool.total_bytes
    seen = []
    while (entry := reopened.peek(timeout=0)) is not None:
        seen.append((entry.meta["seq"], entry.body))
        reopened.pop(entry)
    assert seen == [(seq, f"body {seq}".encode()) for seq in range(1, 12)]
    assert reopened.depth == 0
    assert reopened.total_bytes == 0
    # New entries after a restart sort after the old ones.
    reopened.put({"job_id": "rjb_c", "seq": 99}, b"late")
    again = Spool(tmp_path, 1 << 30)
    entry = again.peek(timeout=0)
    assert entry is not None
    assert entry.meta["seq"] == 99


def test_drop_job_removes_only_that_jobs_entries(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 30)
    for seq in range(6):
        spool.put({"job_id": "rjb_a" if seq % 2 else "rjb_b", "seq": seq}, b"x" * 10)
    assert spool.drop_job("rjb_a") == 3
    assert spool.jobs() == ["rjb_b"]
    assert [p.name for p in sorted(tmp_path.glob("*.chunk"))] == [
        f"{n:020d}.chunk" for n in (1, 3, 5)
    ]
    assert Spool(tmp_path, 1 << 30).depth == 3


def test_a_crash_mid_write_leaves_no_partial_entry(tmp_path: Path) -> None:
    """A writer killed at random points: every entry visible afterwards is complete."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "layers" / "common")!r}]
        from pathlib import Path
        from connector.spool import Spool
        spool = Spool(Path({str(tmp_path)!r}), 1 << 40)
        seq = 0
        print("ready", flush=True)
        while True:
            spool.put({{"job_id": "rjb_a", "seq": seq}}, bytes([seq % 256]) * 3_000_000)
            seq += 1
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 10
    while len(list(tmp_path.glob("*.chunk"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.013)  # somewhere inside a write
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    spool = Spool(tmp_path, 1 << 40)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file was not cleaned up"
    assert not list(tmp_path.glob("*.corrupt"))
    count = spool.depth
    assert count >= 3
    for seq in range(count):
        entry = spool.peek(timeout=0)
        assert entry is not None
        assert entry.meta["seq"] == seq
        assert entry.body == bytes([seq % 256]) * 3_000_000
        spool.pop(entry)


def test_a_leftover_temporary_file_is_never_an_entry(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 30)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"whole")
    (tmp_path / f".{2:020d}.chunk.tmp").write_bytes(b'\x00\x00\x00\x10{"job_id": ')
    reopened = Spool(tmp_path, 1 << 30)
    assert reopened.depth == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_a_damaged_entry_is_moved_aside_not_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 30)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"first")
    spool.put({"job_id": "rjb_a", "seq": 1}, b"second")
    damaged = sorted(tmp_path.glob("*.chunk"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-2] + b"!!")
    reopened = Spool(tmp_path, 1 << 30)
    entry = reopened.peek(timeout=0)
    assert entry is not None
    assert entry.body == b"second"
    assert len(list(tmp_path.glob("*.corrupt"))) == 1


def test_put_blocks_while_the_spool_is_over_its_cap(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"x" * 6_000)
    with pytest.raises(TimeoutError):
        spool.put({"job_id": "rjb_a", "seq": 1}, b"x" * 6_000, timeout=0.1)
    assert spool.depth == 1

    done = threading.Event()

    def produce() -> None:
        spool.put({"job_id": "rjb_a", "seq": 1}, b"y" * 6_000)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.1)
    assert not done.is_set(), "put did not wait for room"
    entry = spool.peek(timeout=0)
    assert entry is not None
    spool.pop(entry)
    assert done.wait(5)
    producer.join()
    entry = spool.peek(timeout=0)
    assert entry is not None
    assert entry.meta["seq"] == 1


def test_an_entry_larger_than_the_cap_goes_into_an_empty_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"z" * 5_000)
    assert spool.depth == 1


def test_close_wakes_waiters(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"z" * 5_000)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            spool.put({"job_id": "rjb_a", "seq": 1}, b"z")
        except SpoolClosedError as exc:
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.05)
    spool.close()
    producer.join(timeout=5)
    assert errors
    assert isinstance(errors[0], SpoolClosedError)
    empty = Spool(tmp_path / "other", 1_000)
    empty.close()
    assert empty.peek(timeout=5) is None


def test_entries_are_private_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.put({"job_id": "rjb_a", "seq": 0}, b"rows")
    (path,) = tmp_path.glob("*.chunk")
    assert os.stat(path).st_mode & 0o077 == 0
