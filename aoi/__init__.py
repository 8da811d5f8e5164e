"""aoi: Anytime Optimal Inference for spiking networks (TET + STR training, softmax cutoff).

A reproduction companion to Wu et al., "Direct Training Needs Regularisation: Anytime Optimal
Inference Spiking Neural Network", arXiv 2405.00699. Modules, lowest layer first:
neurons, losses, regularisers, cutoff, metrics (the maths); models, data; train, evaluate,
anytime, energy (engines); results, plots, reproduce (presentation).
"""

__version__ = "0.1.0"
