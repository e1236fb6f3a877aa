"""hparams.json and hparams.log: what a run dir says about the hparams that named it.

hparams.json holds every hashed field, the seeds, the schema and package versions and the parent's
hash; hparams.log the same for people. A run dir whose stored hparams differ from the command's is
an error, never an overwrite.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Callable, Optional

from foundations import paths
from foundations.errors import UserError
from foundations.hparams import Hparams
from platforms.storage import read_json, write_json, write_text

SCHEMA_VERSION = 1
try:
    PACKAGE_VERSION = importlib.metadata.version("open_prune")
except importlib.metadata.PackageNotFoundError:  # running from a checkout that was never installed
    PACKAGE_VERSION = "unknown"


def write_hparams(run_dir: Path, bundles: dict[str, Hparams], *, kind: str, replicate: int,
                  seeds: dict[str, int], parent_hash: Optional[str] = None, run_hash: str,
                  environment: Callable[[], dict] = dict) -> None:
    """Write hparams.json (every hashed field) and hparams.log (readable), or check existing ones.

    A run dir whose stored hparams differ from the command's is an error, never an overwrite. An
    unreadable hparams.json (a kill mid-write on a filesystem without atomic rename, a truncated
    copy) is rewritten: the directory's name is the hash of these very hparams, so the command's
    are the ones that belong there. A missing hparams.log is written again. `environment()`, where
    the run ran (platforms/environment.py), is recorded once, with the first hparams.json.
    """
    run_dir = Path(run_dir)
    path = run_dir / paths.HPARAMS
    record = {
        "schema_version": SCHEMA_VERSION,
        "package_version": PACKAGE_VERSION,
        "kind": kind,
        "hash": run_hash,
        "parent_hash": parent_hash,
        "replicate": replicate,
        "seeds": seeds,
        "hparams": {key: bundle.to_dict(hashed_only=True) for key, bundle in bundles.items()},
    }
    stored = _read_stored(path)
    if stored is not None:
        check_stored_hparams(path, bundles, stored)
    else:
        if path.exists():
            print(f"open_prune: {path} was unreadable; rewrote it from this command's hparams "
                  f"(the directory's name is their hash)", file=sys.stderr)
        write_json({**record, "environment": environment()}, path)
    if stored is None or not (run_dir / paths.HPARAMS_LOG).exists():
        log = [f"{kind} run {run_hash} (replicate {replicate}, parent {parent_hash or '-'})",
               f"seeds: {seeds}", "fields marked * differ from their defaults", ""]
        log += [bundle.display() for bundle in bundles.values()]
        write_text("\n".join(log) + "\n", run_dir / paths.HPARAMS_LOG)


def _read_stored(path: Path) -> Optional[dict]:
    """The stored hparams of a run dir, or None when there is no readable hparams.json."""
    try:
        stored = read_json(path)["hparams"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return stored if isinstance(stored, dict) else None


def check_stored_hparams(path: Path, bundles: dict[str, Hparams], stored: Optional[dict] = None) -> None:
    """UserError unless the hparams stored at `path` equal `bundles` (unhashed fields aside)."""
    stored = _read_stored(path) if stored is None else stored
    if stored is None:
        raise UserError(f"{path} is unreadable; rerun the command that made this run to rewrite it")
    for key, bundle in bundles.items():
        if key not in stored:
            raise UserError(f"{path} has no '{key}' hparams: this directory belongs to a different kind of run")
        stored_bundle = type(bundle).from_dict({**bundle.unhashed_values(), **stored[key]})
        if stored_bundle.canonical() != bundle.canonical():
            raise UserError(f"{path} was written with different hparams ({stored_bundle.canonical()} vs "
                            f"{bundle.canonical()}); refusing to overwrite it: use another --root or move it aside")
