"""The branch registry: every module under branches/ that declares NAME and SUMMARY is a branch
(the convention of foundations/registry.py), so adding a branch is adding one module or folder.

A branch module declares what it is; `runs.target.Target` builds its command from that:
    NAME, SUMMARY        the command word and its line in `open_prune.py branch`
    BUNDLES              {key: Hparams class}: its flags, hashed under the trunk's
    run(branch) -> rows  the method: prune, train, analyse; the rows of its summary table
and, where it needs them,
    check(branch)        refuse bad flags before anything is trained or written
    seeds(branch)        the seeds it records (default: {bundle key: branch.seed()} of the bundle with --seed)
    SEED_DEFAULT         "replicate" where an unset --seed means the replicate itself (default: "mask",
                         a seed derived from the replicate)
    trunk_of(branch)     the trunk it grows from when that is not the command's own
    check_run(branch)    refuse, after --display_output_location, a run that can be located but would be void
    summary(branch)      what its finished marker shows the reading commands: "headline", [[label, number], ...]
                         in `runs` and `tree` (a barrier, an orderedness), and "metrics"/"final_step" where
                         its result is not a training run's
    DEFAULTS_VERSION     a string in the hash beside the trunk's: bump it when a default of the branch's
                         flags changes meaning, so runs under the new defaults get new directories (a field at
                         its default is left out of the hash, and an old directory would otherwise collide)
    ROW_HEADER, or row_header(branch) where it depends on the trunk
                         the header of its printed summary table (default: level or network, density,
                         test accuracy, run)
    cells(branch, options), merge_options(branch, stored, requested)
                         the results an unhashed "how far" option asks for (IMP's levels, spam's cells) and
                         how requests combine: the marker keeps their union, so results never shrink
"""

from foundations.registry import Registry

BRANCHES = Registry("branches", kind="branch", plural="branches")
