"""open_prune from Python, for notebooks: the runs under a root, one run, a report's table.

    import api
    frame = api.runs("~/open_prune_data")                 # one row per run, as `runs` lists them, every hparam
    run = api.open_run(frame.path[0])                     # one run dir (a trunk, a branch or a level)
    run.hparams, run.metrics, run.curve("test_accuracy"), run.model(), run.mask()
    table = api.report("branch iterative --default_hparams=mnist_lenet_300_100 --levels=3 --replicates=1-3",
                       root="~/open_prune_data")          # report's table, as a DataFrame

Everything reads run dirs and never writes in them (the reading commands' rule); pandas is needed
(`pip install -e ".[notebook]"`). The walk-through is docs/python-api.md.
"""

from api.frames import report, runs
from api.run import RunDir, open_run

__all__ = ["RunDir", "open_run", "report", "runs"]
