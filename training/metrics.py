"""Metrics streamed to metrics.jsonl: one JSON object per line (iteration, step, name, value).

metrics.jsonl is the one file that is appended to rather than replaced, so that a run's curve is
on disk while it trains. A process killed mid-append can leave a half-written last line: readers
skip it, and a resumed run drops it (with every line past its checkpoint) before appending.
"""

from __future__ import annotations

import json
import math
import os
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Iterator

from platforms.storage import WriteFailed, describe_write_error, file_mode, json_safe, write_text


def _json(value: object) -> str:
    """`json.dumps(value)` for one value of a metric line, without its encoder's set-up for the
    common cases (a line is written per metric per evaluation, for every run of a stack)."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int or (kind is float and math.isfinite(value)):
        return repr(value)
    return json.dumps(value)


def read_records(path: Path) -> Iterator[dict]:
    """The complete records of a metrics.jsonl, skipping a half-written or garbled line."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and {"iteration", "name", "value"} <= set(record):
            yield record


class MetricLog:
    """Appends metric lines as they are produced; only the primary process writes."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, iteration: int) -> None:
        """On resume, keep the complete lines up to the checkpoint: later ones will be produced
        again, identically (and a half-written last line is dropped)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [json.dumps(record) for record in read_records(self.path) if record["iteration"] <= iteration]
        write_text("".join(line + "\n" for line in kept), self.path)

    def write(self, iteration: int, step: str, values: dict[str, float]) -> None:
        self.write_many([(iteration, step, values)])

    def write_many(self, records: list[tuple[int, str, dict[str, float]]]) -> None:
        """Append (iteration, step, {name: value}) records in one open and one write."""
        if not self.enabled:
            return
        text = "".join(f'{{"iteration": {_json(iteration)}, "step": {_json(step)}, "name": {_json(name)}, '
                       f'"value": {_json(json_safe(value))}}}\n'
                       for iteration, step, values in records for name, value in values.items())
        if not text:
            return
        data = text.encode()
        try:
            try:  # the file's mode matters only when it is created (reading the umask costs more than the write)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
            try:
                left = memoryview(data)
                while left:  # one write of the whole text, unless the system takes it in parts
                    left = left[os.write(fd, left):]
            finally:
                os.close(fd)
        except OSError as error:
            raise WriteFailed(describe_write_error(error, self.path)) from None
