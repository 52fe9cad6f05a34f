"""Route airllm's print() calls and tqdm progress bars into logging while it loads."""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager, redirect_stderr, redirect_stdout

log = logging.getLogger("airllm")


class _LogWriter(io.TextIOBase):
    """A text stream that turns each completed line into a log record (progress-bar redraws included)."""

    def __init__(self, logger: logging.Logger, level: int):
        self.logger, self.level, self.buffer_ = logger, level, ""

    def write(self, text: str) -> int:
        self.buffer_ += text
        *lines, self.buffer_ = self.buffer_.replace("\r", "\n").split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, "%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self.buffer_.strip():
            self.logger.log(self.level, "%s", self.buffer_.rstrip())
        self.buffer_ = ""


@contextmanager
def airllm_output_to_logging():
    """Capture stdout (airllm's prints, INFO) and stderr (progress bars, DEBUG) for the duration."""
    out, err = _LogWriter(log, logging.INFO), _LogWriter(log, logging.DEBUG)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            yield
    finally:
        out.flush()
        err.flush()
