"""What the chaos-causality branch stands on: the trajectory recorder (exponents and risk per
window, during training), the Granger test that turns them into a mask (causal_pruning), and the
results table (table)."""
