"""The reading commands: list runs, draw the run tree, aggregate replicates into tables and plots,
compare masks, plot weights.

They read run directories and never train or write inside them (their files go under `--out`,
by default `<root>/reports/`), and they tolerate roots that another process is writing to:
a half-written or corrupt file makes a run partial or corrupt, never a crash.
"""
