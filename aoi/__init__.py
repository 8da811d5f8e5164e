"""aoi: Anytime Optimal Inference for spiking networks (TET + STR training, softmax cutoff).

A reproduction companion to Wu et al., "Direct Training Needs Regularisation: Anytime Optimal
Inference Spiking Neural Network", arXiv 2405.00699; docs/method.md says what is implemented and
where each assumption comes from. Modules, lowest layer first (each imports only from below):

- under everything: `errors`, `files`, `allocator` (glibc keeps freed memory; applied on import);
- the paper's maths: `lif_scan` (the LIF's time scan, CPU and Triton kernels: `lif_triton`),
  `neurons` (LIF layer, explicit state), `losses` (TET), `regularisers` (STR), `cutoff`,
  `metrics`, `energy` (SOPs, MACs, energy), `methods` (names of the methods compared);
- `models/` and `data/` (registries: `get_model`, `get_dataset`);
- plain values and files: `config` (TrainConfig), `layout` (where files go, run names),
  `files` (atomic writes, JSON), `provenance`, `checkpoint`, `distributed`;
- engines: `train`, `evaluate` (per-step logits of a trained run), `anytime` (early exit
  that really stops), `analysis` (the cutoff analysis of one run);
- presentation: `results` (results read back as tidy frames), `plots`, `profiles/`,
  `reproduce` (the grid behind ./reproduce.sh), `__main__` (command line).
"""

from aoi.allocator import keep_freed_memory

__version__ = "0.1.0"

keep_freed_memory()  # glibc keeps freed activations for the next step (aoi.allocator)
