"""Seeds derived from the replicate number, one per source of randomness.

Each purpose (initialization, data order, augmentation, mask randomness) gets its own seed, so
changing one never shifts another, and every seed is written to hparams.json.
"""

import hashlib

PURPOSES = ("init", "data_order", "transformation", "mask")


def derive_seed(replicate: int, purpose: str) -> int:
    """A stable 31-bit seed for (replicate, purpose), the same on every machine and Python."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; expected one of {PURPOSES}")
    digest = hashlib.sha256(f"open_prune/{purpose}/{replicate}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
