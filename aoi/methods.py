"""The training methods compared, and how they are named in run names, legends and tables.

A method is TET alone (``"tet"``, alpha = 0) or TET + alpha * STR (``"str"``, alpha > 0); the
reset gradient of the LIF (`aoi.lif_scan`) is the second thing that tells two runs apart.
"""

from __future__ import annotations

import math

METHODS = ("tet", "str")
RESET_GRADIENTS = {False: "through reset", True: "detached"}  # detach_reset -> table label


def check_method(method: str, alpha: float) -> list[str]:
    """The problems with a (method, alpha) pair, as one-line strings (empty when it is valid)."""
    if method not in METHODS:
        return [f"method must be one of {METHODS}, got {method!r}"]
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha < 0:
        return [f"alpha must be a finite number >= 0, got {alpha!r}"]
    if method == "str" and alpha == 0:
        return ["method 'str' needs alpha > 0 (alpha = 0 is method 'tet')"]
    if method == "tet" and alpha != 0:
        return [f"alpha is the STR weight: use method 'str' for alpha={alpha}"]
    return []


def method_label(method: str, alpha: float | None = None) -> str:
    """Legend label: ``TET`` or ``STR(0.1)`` (alpha as written, like the paper's figure)."""
    return "TET" if method == "tet" else f"STR({float(alpha):g})"


def method_order(method: str, alpha: float | None = None) -> tuple:
    """Sort key: TET first, then STR by decreasing alpha (the paper's legend order)."""
    return (0, 0.0) if method == "tet" else (1, -float(alpha))
