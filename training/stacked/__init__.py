"""Stacked training: several compatible runs trained as one stacked model in one process.

    job.py      TrainJob (the arguments of one `training.loop.train` call) and `stack_key`, which
                says whether and with what a job can stack (or, in one line, why not)
    batches.py  each member's batches (its own order and augmentation) as one (N, B, ...) tensor,
                gathered from the one copy of the dataset the members share
    model.py    the members' parameters stacked along a new leading dim, and the batched forward
                (torch.func.functional_call under vmap; LeNet's linear layers as batched matmuls)
    optim.py    SGD (momentum, Nesterov, weight decay) and Adam over stacked parameters, with each
                member's learning rate, momentum and weight decay, and each member's state written
                to / read from an ordinary torch optimizer (so every member's checkpoint.pt is an
                ordinary one)
    boundary.py what a stack changes in the loop's boundary work: one stacked evaluation for all
                members (through BoundaryWork.test_metrics), epoch checkpoints N times further apart
    loop.py     `train_stacked(jobs)`: training.loop.train for N members at once, each writing its
                own run directory with the loop's own boundary work (metrics, weights, checkpoints,
                done.json)

docs/stacking.md says what stacks, how it resumes, and the tolerance against a run trained alone.
"""
