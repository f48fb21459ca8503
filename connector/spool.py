"""The relay's spool: a durable FIFO of outgoing chunks in a directory.

Each entry is one file named by a zero-padded counter (``00000000000000000042.chunk``), so the
order survives restarts. A file is written as ``.<name>.tmp``, flushed and fsynced, then
renamed into place (and the directory fsynced): a crash mid-write leaves only a temporary
file, which the next start deletes, never a partial entry. An entry holds a small JSON header
(job, seq, content encoding, the body's SHA-256) and the body exactly as it will be sent.

`put` blocks while the spool holds more than `max_bytes` (an empty spool always takes one
entry, however large); `peek` waits for the oldest entry; `pop` removes it after a verdict.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SUFFIX = ".chunk"
_NAME = re.compile(r"([0-9]{20})\.chunk")
_HEADER_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 1024 * 1024


class SpoolClosedError(Exception):
    """The spool was closed while a caller waited on it."""


class SpoolCorruptError(Exception):
    """An entry on disk cannot be read back (it is moved aside, never sent)."""


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled chunk: `meta` as it was put (plus ``sha256``), `body` as it will be sent."""

    number: int
    meta: Mapping[str, Any]
    body: bytes
    size: int

    @property
    def job_id(self) -> str:
        return str(self.meta.get("job_id", ""))


class Spool:
    """A directory of spooled chunks; safe to share between a producer and a sender thread."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        # Entries are written one at a time, so the counter order is the queue order.
        self._write_lock = threading.Lock()
        self._closed = False
        self._entries: deque[tuple[int, int, str]] = deque()  # (number, size, job_id)
        self._bytes = 0
        self._recover()

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:020d}{SUFFIX}"

    def _recover(self) -> None:
        for leftover in self.directory.glob(".*.tmp"):
            logger.warning("spool: removing an incomplete entry left by a crash")
            leftover.unlink(missing_ok=True)
        numbers = sorted(
            int(match.group(1))
            for path in self.directory.iterdir()
            if (match := _NAME.fullmatch(path.name))
        )
        for number in numbers:
            path = self._path(number)
            try:
                size = path.stat().st_size
                job_id = str(self._read(number).meta.get("job_id", ""))
            except (OSError, SpoolCorruptError):
                self._quarantine(path)
                continue
            self._entries.append((number, size, job_id))
            self._bytes += size
        self._next = (numbers[-1] + 1) if numbers else 1
        if self._entries:
            logger.info(
                "spool: %d chunks (%d bytes) left by an earlier run",
                len(self._entries),
                self._bytes,
            )

    def _quarantine(self, path: Path) -> None:
        logger.error("spool: an unreadable entry was moved aside entry=%s", path.name)
        try:
            path.rename(path.with_name(path.name + ".corrupt"))
        except OSError as exc:
            logger.error("spool: cannot move an unreadable entry aside error=%s", exc.strerror)

    # --- state --------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._entries)

    @property
    def total_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def close(self) -> None:
        """Wake every waiter (they raise `SpoolClosedError`); entries stay on disk."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- producer -----------------------------------------------------------------------------

    def put(
        self, meta: Mapping[str, Any], body: bytes, *, timeout: float | None = None
    ) -> SpoolEntry:
        """Append an entry durably; blocks while the spool is over its size cap.

        Raises TimeoutError when `timeout` passes first, SpoolClosedError when closed.
        """
        header = dict(meta)
        header["sha256"] = hashlib.sha256(body).hexdigest()
        header_bytes = json.dumps(header, separators=(",", ":")).encode()
        data = _HEADER_LENGTH.pack(len(header_bytes)) + header_bytes + body
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._write_lock:
            with self._cond:
                while self._entries and self._bytes + len(data) > self.max_bytes:
                    if self._closed:
                        raise SpoolClosedError("the spool is closed")
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("the spool stayed full")
                    self._cond.wait(remaining)
                if self._closed:
                    raise SpoolClosedError("the spool is closed")
                number = self._next
                self._next += 1
            self._write(number, data)
            with self._cond:
                self._entries.append((number, len(data), str(meta.get("job_id", ""))))
                self._bytes += len(data)
                self._cond.notify_all()
        return SpoolEntry(number=number, meta=header, body=body, size=len(data))

    def _write(self, number: int, data: bytes) -> None:
        final = self._path(number)
        tmp = self.directory / f".{final.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.directory)

    # --- sender -------------------------------------------------------------------------------

    def peek(self, timeout: float | None = None) -> SpoolEntry | None:
        """The oldest entry, waiting up to `timeout` for one; None when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                while not self._entries:
                    if self._closed:
                        return None
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                number = self._entries[0][0]
            try:
                return self._read(number)
            except (OSError, SpoolCorruptError):
                self._remove(number, quarantine=True)

    def _read(self, number: int) -> SpoolEntry:
        data = self._path(number).read_bytes()
        if len(data) < _HEADER_LENGTH.size:
            raise SpoolCorruptError("entry too short")
        (length,) = _HEADER_LENGTH.unpack_from(data)
        if length > MAX_HEADER_BYTES or _HEADER_LENGTH.size + length > len(data):
            raise SpoolCorruptError("bad header length")
        try:
            meta = json.loads(data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
        except ValueError:
            raise SpoolCorruptError("bad header") from None
        body = data[_HEADER_LENGTH.size + length :]
        if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(body).hexdigest():
            raise SpoolCorruptError("body does not match its checksum")
        return SpoolEntry(number=number, meta=meta, body=body, size=len(data))

    def pop(self, entry: SpoolEntry) -> None:
        """Remove an entry that got its verdict."""
        self._remove(entry.number)

    def _remove(self, number: int, *, quarantine: bool = False) -> None:
        path = self._path(number)
        if quarantine:
            self._quarantine(path)
        else:
            path.unlink(missing_ok=True)
        with self._cond:
            for index, (entry_number, size, _job) in enumerate(self._entries):
                if entry_number == number:
                    del self._entries[index]
                    self._bytes -= size
                    break
            self._cond.notify_all()

    def drop_job(self, job_id: str) -> int:
        """Remove every entry of one job (the cloud refused it with 409); how many went."""
        with self._cond:
            doomed = [(n, s) for n, s, job in self._entries if job == job_id]
            kept = deque(entry for entry in self._entries if entry[2] != job_id)
            self._entries = kept
            self._bytes -= sum(size for _n, size in doomed)
            self._cond.notify_all()
        for number, _size in doomed:
            self._path(number).unlink(missing_ok=True)
        return len(doomed)

    def jobs(self) -> list[str]:
        """The job ids with spooled entries, oldest first."""
        with self._cond:
            return list(dict.fromkeys(job for _n, _s, job in self._entries))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        logger.debug("spool: directory fsync unsupported error=%s", exc.strerror)
    finally:
        os.close(fd)
