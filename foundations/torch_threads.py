"""torch's CPU thread count for one block of code."""

import contextlib
from typing import Iterator, Optional

import torch


@contextlib.contextmanager
def torch_threads(count: Optional[int]) -> Iterator[None]:
    """torch's CPU thread count in this thread for the block (None: left as it is). The count is
    OpenMP's, kept per thread: setting it in one thread leaves the others' as they were."""
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
