"""`open_prune.py train`: train a dense network (the trunk)."""

from __future__ import annotations

from foundations.errors import UserError
from platforms.platform import Platform
from training.arguments import build_parser, trunk_desc
from training.report import format_metric, print_table
from training.trunk import Trunk

SUMMARY = "train a dense network (the trunk)"


def main(argv: list[str]) -> int:
    parser = build_parser("open_prune.py train", SUMMARY, argv)
    args = parser.parse_args(argv)
    trunk = Trunk(trunk_desc(args), args.replicate, Platform.from_args(args))
    if args.replicate < 0:
        raise UserError(f"--replicate={args.replicate} must be zero or positive")
    if args.display_output_location:
        print(trunk.dir)
        return 0
    was_done = trunk.is_done
    done = trunk.run(wait_for_lock=args.wait_for_lock)
    metrics = done["metrics"]
    print_table(["run", "step", "test accuracy", "test loss"],
                [[str(trunk.dir), done["final_step"], format_metric(metrics.get("test_accuracy")),
                  format_metric(metrics.get("test_loss"))]])
    if was_done:
        print("(already finished: nothing was retrained)")
    return 0
