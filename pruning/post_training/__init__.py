"""Post-training pruning of a trained network from calibration data, with no retraining: Wanda
(Sun et al. 2023), SparseGPT (Frantar & Alistarh 2023) and OWL's layerwise sparsities (Yin et al.
2024). Every method walks the network step by step (calibration.py) so that each step's inputs
come from the steps before it as already pruned (and, for SparseGPT, reconstructed)."""
