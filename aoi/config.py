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

from aoi.errors import UserError
from aoi.layout import run_name
from aoi.methods import check_method


class ConfigError(UserError, ValueError):
    """A TrainConfig value of the wrong type or out of range; the message names every such field."""


_OPTIONAL = ("limit_train", "limit_test")  # may also be None
_INTEGERS = {  # field: (smallest, largest)
    "T": (1, math.inf),
    "epochs": (1, math.inf),
    "batch_size": (1, math.inf),
    "seed": (0, 2**32 - 1),  # numpy's seed range
    "limit_train": (1, math.inf),
    "limit_test": (1, math.inf),
    "num_workers": (0, math.inf),
    "folds": (0, math.inf),  # and not 1 (_problems)
    "fold": (0, math.inf),  # and below folds (_problems)
}
_NUMBERS = {  # field: (its range in words, test); alpha is checked with the method
    "beta": (" in (0, 1]", lambda v: 0 < v <= 1),
    "window": (" in (0, 1]", lambda v: 0 < v <= 1),
    "width": (" > 0", lambda v: v > 0),
    "lamb": (" in [0, 1]", lambda v: 0 <= v <= 1),
    "means": ("", lambda v: True),
    "lr": (" > 0", lambda v: v > 0),
    "momentum": (" in [0, 1)", lambda v: 0 <= v < 1),
    "weight_decay": (" >= 0", lambda v: v >= 0),
    "validation": (" in [0, 1)", lambda v: 0 <= v < 1),
}


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
    folds: int = _field(0, "k >= 2: stratified k-fold cross-validation, train and test pooled; 0: the dataset's split")
    fold: int = _field(0, "the fold tested, 0 .. folds-1 (the others train; validation is held out of them)")
    limit_train: int | None = _field(None, "use only this many training samples")
    limit_test: int | None = _field(None, "use only this many test samples")
    num_workers: int = _field(0, "DataLoader worker processes")
    device: str = _field("auto", "auto (CUDA if available), cpu, cuda, cuda:1, ...")

    def __post_init__(self):
        from aoi.data import DATASETS
        from aoi.models import DEFAULT_MODEL

        if not isinstance(self.dataset, str) or self.dataset not in DATASETS:
            raise ConfigError(f"invalid TrainConfig: unknown dataset {self.dataset!r} (known: {', '.join(DATASETS)})")
        if self.model is None:
            object.__setattr__(self, "model", DEFAULT_MODEL.get(self.dataset))
        if self.T is None:
            object.__setattr__(self, "T", DATASETS[self.dataset].default_T)
        problems = self._problems()
        if problems:
            raise ConfigError("invalid TrainConfig: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """Every wrong value (type or range), one phrase each naming the field."""
        from aoi.models import MODELS

        problems = check_method(self.method, self.alpha)
        if not isinstance(self.model, str) or self.model not in MODELS:
            problems.append(f"unknown model {self.model!r} (known: {', '.join(sorted(MODELS))})")
        if not isinstance(self.detach_reset, bool):
            problems.append(f"detach_reset must be true or false, got {self.detach_reset!r}")
        if not isinstance(self.device, str):
            problems.append(f"device must be a string (auto, cpu, cuda, cuda:1, ...), got {self.device!r}")
        for name, (low, high) in _INTEGERS.items():
            value = getattr(self, name)
            missing = value is None and name in _OPTIONAL
            if not missing and not (_is_integer(value) and low <= value <= high):
                allowed = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
                none = "None or " if name in _OPTIONAL else ""
                problems.append(f"{name} must be {none}an integer {allowed}, got {value!r}")
        if self.folds == 1 or (_is_integer(self.folds) and _is_integer(self.fold) and self.fold >= max(self.folds, 1)):
            problems.append(f"folds must be 0 or >= 2 and fold in [0, folds), got folds={self.folds}, fold={self.fold}")
        for name, (allowed, test) in _NUMBERS.items():
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and test(value)):
                problems.append(f"{name} must be a finite number{allowed}, got {value!r}")
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
            raise ConfigError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def build_model(config: TrainConfig):  # -> torch.nn.Module
    """The (freshly initialised) model of ``config``, for its dataset's classes and input shape."""
    from aoi.data import dataset_info
    from aoi.models import get_model

    info = dataset_info(config.dataset)
    return get_model(
        config.model, info.num_classes, info.input_shape, config.T, detach_reset=config.detach_reset, width=config.width
    )
