"""The in-flight board shared by forked workers (real fork, real shared memory)."""
import os
import threading
import time

import pytest

from app.fleet import board as board_module
from app.fleet.board import Board
from app.fleet.line import LineFull, WaitingLine


@pytest.fixture
def board():
    return Board(board_module._process_lock())


def _in_child(fn) -> int:
    """Run fn in a forked child (a worker); wait for it; return its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitpid(pid, 0)[1]


def test_counts_of_every_worker_add_up_and_each_worker_has_its_own_row(board):
    slot = board.model_slot("llama3:latest")
    board.add_inflight(slot, 3, 1)
    read, write = os.pipe()
    hold, _never_written = os.pipe()

    def worker():
        board.add_inflight(board.model_slot("llama3:latest"), 3, 2)
        board.add_waiting(slot, 1)
        os.write(write, b"x")
        os.read(hold, 1)  # stays alive until killed (a dead worker's counts are dropped)

    pid = os.fork()
    if pid == 0:
        worker()
        os._exit(0)
    assert os.read(read, 1) == b"x"
    board._live_checked = 0.0
    assert board.inflight(slot, 3) == 3
    assert board.waiting(slot) == 1 and board.total_waiting() == 1
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    board._live_checked = 0.0
    assert board.inflight(slot, 3) == 1  # the killed worker's requests are no longer counted
    assert board.waiting(slot) == 0


def test_model_slots_agree_between_workers_and_skip_the_totals_slot(board):
    slots = {name: board.model_slot(name) for name in ("a:latest", "b:latest", "c:1b")}
    assert 0 not in slots.values() and len(set(slots.values())) == 3
    read, write = os.pipe()

    def child():
        os.write(write, ",".join(str(board.model_slot(n)) for n in ("c:1b", "b:latest", "new:latest")).encode())

    assert _in_child(child) == 0
    c, b, new = (int(x) for x in os.read(read, 100).decode().split(","))
    assert (c, b) == (slots["c:1b"], slots["b:latest"])
    assert board.model_slot("new:latest") == new  # claimed by the child, found by the parent


def test_a_model_load_is_counted_once_however_many_workers_see_it(board):
    slot = board.model_slot("m:latest")
    assert board.observe_present(slot, 1, True) is True
    assert _in_child(lambda: board.observe_present(slot, 1, True) and os._exit(1)) == 0
    assert board.loads(1) == 1
    board.observe_present(slot, 1, False)
    assert board.observe_present(slot, 1, True) is True and board.loads(1) == 2


def test_blob_uploads_remember_their_node(board):
    digest = "sha256:" + "ab" * 32
    assert board.blob_node(digest) is None
    board.remember_blob(digest, 5)
    assert board.blob_node(digest.replace(":", "-")) == 5


def test_the_line_is_first_come_first_served_and_bounded(board):
    line = WaitingLine(board, max_queue=2, timeout_s=5.0)
    slot = board.model_slot("m:latest")
    free = threading.Event()
    order, errors = [], []

    def waiter(name):
        try:
            line.wait("m:latest", slot, lambda: name if free.is_set() else None)
            order.append(name)
            line.slot_freed("m:latest")
        except LineFull as exc:
            errors.append(exc)

    first = threading.Thread(target=waiter, args=("first",))
    first.start()
    deadline = time.monotonic() + 5
    while board.waiting(slot) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    while board.waiting(slot) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(LineFull):
        line.wait("m:latest", slot, lambda: "third")
    free.set()
    first.join(5)
    second.join(5)
    assert order == ["first", "second"] and not errors
    assert board.waiting(slot) == 0


def test_a_request_that_waits_too_long_is_told_so(board):
    line = WaitingLine(board, max_queue=5, timeout_s=0.2)
    with pytest.raises(LineFull) as info:
        line.wait("m:latest", board.model_slot("m:latest"), lambda: None)
    assert "PROXY_QUEUE_TIMEOUT_S" in info.value.message and board.total_waiting() == 0
