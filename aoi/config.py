"""`TrainConfig`: everything that defines a training run, as plain values, checked on construction.

Every field is a command-line flag of ``python -m aoi train`` (its help is the field's
``metadata["help"]``) and a key of a profile's run (`aoi.profiles`). A run's directory name
comes from its values (`aoi.layout.run_name`). Importing this module imports no torch (the
dataset and model registries are read when a config is built), so planning a study stays light.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from aoi.layout import run_name
from aoi.methods import check_method


def _field(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, model, method (TET or TET + alpha * STR), optimiser and size.

    ``model`` and ``T`` left None become the dataset's (`aoi.models.DEFAULT_MODEL`, the
    dataset's default T) on construction. JSON round-trips via `asdict` / `from_dict`.
    """

    dataset: str = dataclasses.field(metadata={"help": "dataset name, e.g. digits, ndigits, cifar10"})
    model: str | None = _field(None, "model name (default: the dataset's, aoi.models.DEFAULT_MODEL)")
    T: int | None = _field(None, "timesteps (default: the dataset's)")
    method: str = _field("tet", "tet or str (TET + alpha * STR)")
    alpha: float = _field(0.0, "STR weight: 0 for tet, > 0 for str")
    beta: float = _field(0.3, "STR reference: fraction of the final steps averaged")
    window: float = _field(0.3, "STR mask: fraction of the final steps that must be predicted right")
    detach_reset: bool = _field(False, "detach the LIF's reset from the gradient (snnTorch) instead of not (TET)")
    width: float = _field(1.0, "model width: every channel count times this")
    lamb: float = _field(1e-3, "TET: weight of the MSE term")
    means: float = _field(1.0, "TET: target of the MSE term")
    epochs: int = _field(30, "epochs (cosine annealing to 0 over them)")
    batch_size: int = _field(128, "global batch size (split across torchrun processes)")
    lr: float = _field(0.1, "SGD learning rate")
    momentum: float = _field(0.9, "SGD momentum")
    weight_decay: float = _field(5e-4, "SGD weight decay")
    seed: int = _field(0, "seed of initialisation, shuffling and augmentation")
    validation: float = _field(0.0, "fraction of the training data held out (stratified) for model selection")
    limit_train: int | None = _field(None, "use only this many training samples")
    limit_test: int | None = _field(None, "use only this many test samples")
    num_workers: int = _field(0, "DataLoader worker processes")
    device: str = _field("auto", "auto (CUDA if available), cpu, cuda, cuda:1, ...")

    def __post_init__(self):
        from aoi.data import dataset_info
        from aoi.models import DEFAULT_MODEL

        if self.model is None:
            if self.dataset not in DEFAULT_MODEL:
                raise ValueError(f"no default model for dataset {self.dataset!r}: pass model=...")
            object.__setattr__(self, "model", DEFAULT_MODEL[self.dataset])
        if self.T is None:
            object.__setattr__(self, "T", int(dataset_info(self.dataset).default_T))
        problems = self._problems()
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        from aoi.models import MODELS

        problems = check_method(self.method, self.alpha)
        if self.model not in MODELS:
            problems.append(f"unknown model {self.model!r} (known: {', '.join(sorted(MODELS))})")
        if not isinstance(self.detach_reset, bool):
            problems.append(f"detach_reset must be true or false, got {self.detach_reset!r}")
        problems += [
            f"{n} must be >= 1, got {getattr(self, n)}" for n in ("T", "epochs", "batch_size") if getattr(self, n) < 1
        ]
        problems += [
            f"{n} must be in (0, 1], got {getattr(self, n)}"
            for n in ("beta", "window")
            if not 0 < getattr(self, n) <= 1
        ]
        if not 0 <= self.lamb <= 1:
            problems.append(f"lamb must be in [0, 1], got {self.lamb}")
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            problems.append("lr must be > 0, momentum and weight_decay >= 0")
        if not (math.isfinite(self.width) and self.width > 0):
            problems.append(f"width must be a finite number > 0, got {self.width}")
        if not 0 <= self.validation < 1:
            problems.append(f"validation must be in [0, 1), got {self.validation}")
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be None or >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be >= 0, got {self.num_workers}")
        return problems

    def run_name(self) -> str:
        """The run's directory name, e.g. ``"ndigits/T10-str-a0.5-s0"`` (`aoi.layout.run_name`)."""
        return run_name(self.asdict())

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def build_model(config: TrainConfig):  # -> torch.nn.Module
    """The (freshly initialised) model of ``config``, for its dataset's classes and input shape."""
    from aoi.data import dataset_info
    from aoi.models import get_model

    info = dataset_info(config.dataset)
    return get_model(
        config.model, info.num_classes, info.input_shape, config.T, detach_reset=config.detach_reset, width=config.width
    )
