"""Read an offline W&B run back: its `.wandb` transaction log (LevelDB's log framing, W&B's header)
decoded with W&B's own protobuf schema (`wandb.proto.wandb_internal_pb2.Record`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7  # ":W&B", magic 0xBEE1, version: the file's; then checksum (4), length (2), type (1) per chunk
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    found, position, pending = [], HEADER, b""
    while position + HEADER <= len(data):
        left = BLOCK - position % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + HEADER])
        chunk = data[position + HEADER:position + HEADER + length]
        position += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def history(log: list) -> dict[int, dict[str, object]]:
    """{step: {key: value}} of the run's history rows (JSON-decoded values)."""
    rows = {}
    for record in log:
        if record.WhichOneof("record_type") == "history":
            items = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                     for item in record.history.item}
            rows[int(items.get("_step", record.history.step.num))] = items
    return rows


def run_record(log: list):
    return next(r.run for r in log if r.WhichOneof("record_type") == "run")


def summary(log: list) -> dict[str, object]:
    found = {}
    for record in log:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                found[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return found
