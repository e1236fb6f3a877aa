"""`open_prune.py train`: train a dense network (the trunk)."""

from __future__ import annotations

from runs.target import train_target

SUMMARY = "train a dense network (the trunk)"  # the same words as runs.target.TRAIN_SUMMARY


def main(argv: list[str]) -> int:
    return train_target().run(argv)
