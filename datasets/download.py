"""`--download`: torchvision's own downloader for the datasets it knows, imported only then."""

from __future__ import annotations

from pathlib import Path

from foundations.errors import UserError


def download(class_name: str, name: str, root: Path, train: bool, where: Path, what: str) -> None:
    """Download one split of `name` with torchvision.datasets.<class_name> into `root`; a network
    or disk failure is one UserError that says to fetch `what` into `where` by hand."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, class_name)(root=str(root), train=train, download=True)
    except Exception as error:  # network or disk failures: tell the user, not a traceback
        raise UserError(f"downloading {name} into {where} failed ({error}); fetch {what} by hand") from error
