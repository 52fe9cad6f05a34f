"""The in-flight board: what every gunicorn worker of this host is sending to which node, in shared memory.

Placement is only right if it counts the requests of *all* workers (two workers that each see one request in
flight on a node with NUM_PARALLEL=2 would both send a third). The board is an anonymous shared mapping that
gunicorn's master creates before it forks (`prepare()`, from gunicorn.conf.py), so every worker inherits the
same pages. Without a master (tests, a single process) a private board is made on first use.

No locks on the hot path: each worker writes only its own row of counters (greenlets of one worker switch only
on I/O, never inside `+= 1`), and readers add the rows of the workers that are alive. A lock is taken only to
claim a worker row or a model slot, which happens once per worker and once per model name.
"""
from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import threading
import time

MAX_WORKERS = 32
MAX_MODELS = 512
MAX_NODES = 64  # NodeConfig.slot is an index below this
BLOB_SLOTS = 1024

_HEADER = 64
_I32, _I64, _F64 = 4, 8, 8


def model_hash(key: str) -> int:
    """A stable 63-bit id for a normalised model name (Python's hash() differs between processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1 or 1


class _Layout:
    """Byte offsets of each array in the mapping."""

    def __init__(self):
        offset = _HEADER
        self.workers = offset; offset += MAX_WORKERS * _I64  # pid per worker row, 0 = free  # noqa: E702
        self.models = offset; offset += MAX_MODELS * _I64  # model hash per slot, 0 = free  # noqa: E702
        self.inflight = offset; offset += MAX_WORKERS * MAX_MODELS * MAX_NODES * _I32  # noqa: E702
        self.waiting = offset; offset += MAX_WORKERS * MAX_MODELS * _I32  # noqa: E702
        self.last_sent = offset; offset += MAX_MODELS * MAX_NODES * _F64  # noqa: E702
        self.last_head = offset; offset += MAX_MODELS * MAX_NODES * _F64  # noqa: E702
        self.present = offset; offset += MAX_MODELS * MAX_NODES  # noqa: E702  (1 byte each)
        self.loads = offset; offset += MAX_NODES * _I64  # noqa: E702
        self.blob_keys = offset; offset += BLOB_SLOTS * _I64  # noqa: E702
        self.blob_nodes = offset; offset += BLOB_SLOTS * _I32  # noqa: E702
        self.size = offset


LAYOUT = _Layout()
_prepared: "Board | None" = None
_prepared_lock = threading.Lock()


def prepare() -> "Board":
    """Create the board in gunicorn's master, before the fork (idempotent)."""
    global _prepared
    with _prepared_lock:
        if _prepared is None:
            _prepared = Board(_process_lock())
        return _prepared


def shared() -> "Board":
    """The board this process uses: the master's when there was one, else a private one."""
    return _prepared or prepare()


def _process_lock():
    """A lock that works across forked workers (a POSIX semaphore), or a thread lock where that is missing."""
    try:
        import multiprocessing

        return multiprocessing.get_context("fork").RLock()  # re-entrant: a locked step may claim a model slot
    except (ImportError, OSError, ValueError):
        return threading.RLock()


class Board:
    def __init__(self, lock):
        self._lock = lock
        self._mm = mmap.mmap(-1, LAYOUT.size, flags=mmap.MAP_SHARED)
        view = memoryview(self._mm)
        L = LAYOUT  # noqa: N806
        self._generation = view[0:8].cast("q")  # bumped whenever a worker row is claimed or given back
        self._workers = view[L.workers:L.models].cast("q")
        self._models = view[L.models:L.inflight].cast("q")
        self._inflight = view[L.inflight:L.waiting].cast("i")
        self._waiting = view[L.waiting:L.last_sent].cast("i")
        self._last_sent = view[L.last_sent:L.last_head].cast("d")
        self._last_head = view[L.last_head:L.present].cast("d")
        self._present = view[L.present:L.loads].cast("b")
        self._loads = view[L.loads:L.blob_keys].cast("q")
        self._blob_keys = view[L.blob_keys:L.blob_nodes].cast("q")
        self._blob_nodes = view[L.blob_nodes:L.size].cast("i")
        self._row: int | None = None
        self._row_pid = 0
        self._model_slots: dict[str, int] = {}
        self._live_rows: tuple[int, ...] = ()
        self._live_checked = 0.0
        self._live_generation = -1

    # -- claiming (rare, locked) -----------------------------------------------------------------------------

    def _with_lock(self, fn):
        acquired = self._lock.acquire(timeout=1.0)  # a worker killed inside the lock must not freeze the rest
        try:
            return fn()
        finally:
            if acquired:
                self._lock.release()

    @contextlib.contextmanager
    def locked(self):
        """Hold the board's lock (across workers) for a decide-then-count step; microseconds, no I/O inside."""
        acquired = self._lock.acquire(timeout=1.0)
        try:
            yield
        finally:
            if acquired:
                self._lock.release()

    def row(self) -> int:
        """This process's worker row, claimed on first use (and again after a fork)."""
        pid = os.getpid()
        if self._row is not None and self._row_pid == pid:
            return self._row

        def claim() -> int:
            for index in range(MAX_WORKERS):
                owner = self._workers[index]
                if owner == 0 or not _alive(owner):
                    self._clear_row(index)
                    self._workers[index] = pid
                    self._generation[0] += 1
                    return index
            raise RuntimeError(f"more than {MAX_WORKERS} workers share one in-flight board")

        self._row, self._row_pid = self._with_lock(claim), pid
        self._live_checked = 0.0
        return self._row

    def release_row(self) -> None:
        """Give the row back when the worker exits (a crashed worker's row is reclaimed by the next claim)."""
        if self._row is not None and self._row_pid == os.getpid():
            row = self._row
            self._with_lock(lambda: (self._clear_row(row), self._workers.__setitem__(row, 0),
                                     self._generation.__setitem__(0, self._generation[0] + 1)))
            self._row = None

    def _clear_row(self, row: int) -> None:
        base = row * MAX_MODELS * MAX_NODES
        for i in range(base, base + MAX_MODELS * MAX_NODES):
            if self._inflight[i]:
                self._inflight[i] = 0
        base = row * MAX_MODELS
        for i in range(base, base + MAX_MODELS):
            if self._waiting[i]:
                self._waiting[i] = 0

    def model_slot(self, key: str) -> int:
        """The slot of a normalised model name, the same in every worker."""
        slot = self._model_slots.get(key)
        if slot is not None:
            return slot
        wanted = model_hash(key)

        def find_or_claim() -> int:
            start = wanted % (MAX_MODELS - 1)  # slot 0 is the per-node total
            for step in range(MAX_MODELS - 1):
                index = 1 + (start + step) % (MAX_MODELS - 1)
                held = self._models[index]
                if held == wanted:
                    return index
                if held == 0:
                    self._models[index] = wanted
                    return index
            return 1 + start  # full: share a slot (counts of two models add up; placement degrades, never fails)

        slot = self._model_slots[key] = self._with_lock(find_or_claim)
        return slot

    def live_rows(self) -> tuple[int, ...]:
        """Rows of workers that are alive: at once when a worker claims or frees a row, and a killed worker's
        counts drop out within a second (its pid is checked that often)."""
        now = time.monotonic()
        generation = self._generation[0]
        if generation != self._live_generation or now - self._live_checked > 1.0:
            self._live_checked, self._live_generation = now, generation
            self._live_rows = tuple(i for i in range(MAX_WORKERS) if self._workers[i] and _alive(self._workers[i]))
        return self._live_rows

    # -- counters (lock-free) -----------------------------------------------------------------------------

    def add_inflight(self, model_slot: int, node_slot: int, delta: int) -> None:
        self._inflight[(self.row() * MAX_MODELS + model_slot) * MAX_NODES + node_slot] += delta

    def state(self, model_slot: int, node_slot: int, rows: tuple | None = None) -> tuple[int, float, float]:
        """(requests in flight from all workers, last sent, last answered) for a model on a node, in one go.
        `rows`: live_rows(), when the caller reads many states at once."""
        index = model_slot * MAX_NODES + node_slot
        inflight, stride = self._inflight, MAX_MODELS * MAX_NODES
        running = 0
        for row in self.live_rows() if rows is None else rows:
            running += inflight[row * stride + index]
        return running, self._last_sent[index], self._last_head[index]

    def inflight(self, model_slot: int, node_slot: int) -> int:
        return sum(self._inflight[(row * MAX_MODELS + model_slot) * MAX_NODES + node_slot]
                   for row in self.live_rows())

    def add_waiting(self, model_slot: int, delta: int) -> None:
        self._waiting[self.row() * MAX_MODELS + model_slot] += delta

    def waiting(self, model_slot: int) -> int:
        return sum(self._waiting[row * MAX_MODELS + model_slot] for row in self.live_rows())

    def total_waiting(self) -> int:
        waiting = self._waiting
        return sum(waiting[row * MAX_MODELS + m] for row in self.live_rows() for m in range(MAX_MODELS)
                   if waiting[row * MAX_MODELS + m])

    def mark_sent(self, model_slot: int, node_slot: int, when: float) -> None:
        self._last_sent[model_slot * MAX_NODES + node_slot] = when

    def last_sent(self, model_slot: int, node_slot: int) -> float:
        return self._last_sent[model_slot * MAX_NODES + node_slot]

    def mark_head(self, model_slot: int, node_slot: int, when: float) -> None:
        self._last_head[model_slot * MAX_NODES + node_slot] = when

    def last_head(self, model_slot: int, node_slot: int) -> float:
        return self._last_head[model_slot * MAX_NODES + node_slot]

    def observe_present(self, model_slot: int, node_slot: int, present: bool) -> bool:
        """Record whether a node's /api/ps lists a model; True when it newly appeared (a model load).

        Every worker polls /api/ps, so the flag dedupes: the first worker to see the model appear counts it."""
        index = model_slot * MAX_NODES + node_slot
        if present and not self._present[index]:
            self._present[index] = 1
            self._loads[node_slot] += 1
            return True
        if not present and self._present[index]:
            self._present[index] = 0
        return False

    def loads(self, node_slot: int) -> int:
        return self._loads[node_slot]

    def reset_node(self, node_slot: int) -> None:
        """A node slot was given to a new node: forget what the old one had loaded."""
        for m in range(MAX_MODELS):
            index = m * MAX_NODES + node_slot
            self._present[index] = 0
            self._last_sent[index] = 0.0
            self._last_head[index] = 0.0
        self._loads[node_slot] = 0

    # -- blob uploads and the create that follows go to one node ------------------------------------------

    def remember_blob(self, digest: str, node_slot: int) -> None:
        key = model_hash("blob:" + digest.lower().replace("-", ":"))
        index = key % BLOB_SLOTS
        self._blob_keys[index] = key
        self._blob_nodes[index] = node_slot

    def blob_node(self, digest: str) -> int | None:
        key = model_hash("blob:" + digest.lower().replace("-", ":"))
        index = key % BLOB_SLOTS
        return self._blob_nodes[index] if self._blob_keys[index] == key else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


assert struct.calcsize("q") == _I64 and struct.calcsize("i") == _I32
