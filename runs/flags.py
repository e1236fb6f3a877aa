"""Command-line parsers for commands that build on a trunk (train, and every branch)."""

from __future__ import annotations

import argparse
from typing import Optional

import models.registry as models_registry
from foundations.bundles import TRUNK_BUNDLES
from foundations.cli import Parser, add_job_args, peek_flag
from foundations.desc import TrainDesc
from foundations.errors import UserError
from foundations.hparams import Hparams
from platforms.platform import Platform


def build_parser(prog: str, description: str, argv: list[str],
                 extra_bundles: Optional[dict[str, type[Hparams]]] = None) -> Parser:
    """Job, platform and hparam flags; `--default_hparams` in argv fills the hparam defaults."""
    name = peek_flag(argv, "default_hparams")
    defaults = {}
    if name:
        if not models_registry.exists(name):
            raise UserError(f"unknown --default_hparams={name!r}: give a model name, one of "
                            + "; ".join(models_registry.name_patterns()))
        defaults = models_registry.default_hparams(name)
    parser = Parser(prog=prog, description=description)
    add_job_args(parser)
    Platform.add_args(parser)
    for key, bundle in {**TRUNK_BUNDLES, **(extra_bundles or {})}.items():
        bundle.add_args(parser, defaults=defaults.get(key))
    return parser


def trunk_desc(args: argparse.Namespace) -> TrainDesc:
    return TrainDesc(*(bundle.from_args(args) for bundle in TRUNK_BUNDLES.values()))
