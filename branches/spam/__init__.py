"""What the SpaM branches (spam, spam-online) share: training with a learned prior
(prior_training), the Laplace of the MAP trunk (map_laplace), post-hoc pruning sweeps (sweep),
their tables (tables), and pruning during training (online_pruning)."""
