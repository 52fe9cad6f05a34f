"""The batch writer: listeners see a record once, a failed write is retried with the same records."""
from app.telemetry.recorder import Recorder
from app.telemetry.records import RequestRecord


class FlakySink:
    def __init__(self):
        self.fail = True
        self.written = []

    def write(self, session, records):
        if self.fail:
            raise RuntimeError("database is locked")
        self.written.extend(records)


class NoSession:
    def begin(self):
        return self

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_failed_write_is_retried_and_listeners_run_once():
    sink, seen = FlakySink(), []
    recorder = Recorder(NoSession(), [sink])
    recorder.add_listener(seen.append)
    first = RequestRecord(method="POST", endpoint="/api/chat", client="c", status=500)
    recorder.submit(first)
    assert recorder.flush() == 0 and seen == [first]
    sink.fail = False
    second = RequestRecord(method="POST", endpoint="/api/chat", client="c", status=200)
    recorder.submit(second)
    assert recorder.flush() == 2
    assert sink.written == [first, second] and seen == [first, second]
    assert recorder.flush() == 0
