"""The samples in flight of streaming early exit (`aoi.anytime.predict`): chunks of steps, an exit
decided at every step, continuous batching.

Each forward runs the next k steps of every sample in flight, with the neurons' state carried
(`aoi.neurons.streaming`), and returns every step's logits [k, n, K]. Y_t = Y_{t-1} + O_t is summed
in float64 and rounded to the logits' dtype at every step, as PyTorch's ``cumsum`` does on CPU (a
float32 running sum would round differently and move exits that lie within rounding of the
threshold); the rule is asked at every step, and a sample exits at the first step where it fires
(or at T). The steps a sample ran past its exit in the same chunk cost time only: its exit step,
prediction and operation counts are those of its exit step. After the chunk, the samples that exited
leave the batch and every neuron's state, or waiting samples take their places, in place.
"""

from __future__ import annotations

import torch
from torch import nn

from aoi import inference
from aoi.energy import OperationCounter
from aoi.neurons import forward_in_pieces, keep_samples, lif_layers, restart_samples

COUNTS = ("synops", "macs")  # per-sample operation counts (aoi.energy)


class Flight:
    """The samples in flight, one row each, over inputs [T, N, ...]. All per-sample state lives in
    ``fields``, filtered and extended together: index [n] (position in the inputs), step [n] (steps
    run so far), total [n, K] (Y so far, float64; None before the first forward) and, when
    ``counted``, the SOPs and MACs [n] of the steps so far (up to the exit step once exited)."""

    def __init__(self, inputs: torch.Tensor, samples: int, stop_rule, counted: bool):
        self.T, self.N = inputs.shape[:2]
        self.inputs, self.rows = inputs, inputs.flatten(0, 1)  # row t * N + i of rows: step t of sample i
        self.offsets = torch.arange(self.T, device=inputs.device)[:, None]
        self.stop_rule = stop_rule  # (steps [k, n] 0-based, Y [k, n, K]) -> fired [k, n] bool
        index = torch.arange(samples, device=inputs.device)
        self.fields = {"index": index, "step": torch.zeros_like(index), "total": None}
        self.fields.update({name: torch.zeros_like(index) for name in COUNTS if counted})
        self.steps = self.accumulated = self.fired = None  # [k, n] steps, Y [k, n, K], the rule's answers [k, n]

    def positions(self, k: int) -> torch.Tensor:
        """The steps [k, n] (0-based; past T: T - 1) of the next chunk of ``k`` steps, kept for `advance`."""
        self.steps = (self.fields["step"] + self.offsets[:k]).clamp_(max=self.T - 1)
        return self.steps

    def forward(self, model: nn.Module, k: int, layers: list, piece_rows: int | None) -> torch.Tensor:
        """Logits [k, n, K] of the next ``k`` steps of every sample in flight (steps past T repeat step T's
        inputs), in forwards of at most ``piece_rows`` rows (None: one; `aoi.neurons.forward_in_pieces`)."""
        x = self.rows.index_select(0, (self.positions(k) * self.N + self.fields["index"]).view(-1))
        x = x.view(k, -1, *self.rows.shape[1:])
        return forward_in_pieces(model, x, x.shape[1] if piece_rows is None else max(1, piece_rows // k), layers)

    def advance(self, outputs: torch.Tensor, counts: tuple = ()) -> torch.Tensor:
        """Take the logits [k, n, K] of the chunk at `positions` and their counts ([k * n] each, row j * n + i),
        decide the exit at every step; return which samples exited [n] bool (counted up to their exit step)."""
        fields, steps = self.fields, self.steps
        total = fields["total"]
        if total is None:
            total = outputs.new_zeros(outputs.shape[1:], dtype=torch.float64)
        history = torch.cat([total[None], outputs.double()]).cumsum(0)[1:]  # [k, n, K]: Y, in order from Y so far
        self.accumulated = history.to(outputs.dtype)
        self.fired = self.stop_rule(steps, self.accumulated) | (steps == self.T - 1)
        stopped = self.fired.any(0)
        if counts:
            k = outputs.shape[0]
            ran = self.offsets[:k] <= torch.where(stopped, self.first(), k - 1)
            for name, value in zip(COUNTS, counts):
                fields[name] += (value.view(ran.shape) * ran).sum(0)
        fields["total"] = history[-1]
        fields["step"] += outputs.shape[0]
        return stopped

    def first(self) -> torch.Tensor:
        """[n]: the step of the last chunk (0-based) at which each sample exited (0 where none did)."""
        return self.fired.byte().argmax(0)

    def record(self, results: dict, stop: torch.Tensor) -> None:
        """Write the exit step, the prediction and the counts of the rows ``stop`` [n] bool, which exited
        in the chunk just taken (`advance`), into ``results`` ([N] tensors by name)."""
        fields, rows = self.fields, stop.nonzero()[:, 0]
        done, at = fields["index"][rows], self.first()[rows]
        results["exit_steps"][done] = self.steps[at, rows] + 1
        results["predictions"][done] = self.accumulated[at, rows].argmax(-1)
        for name in COUNTS:
            if name in fields:
                results[name][done] = fields[name][rows]

    def refill(self, places: torch.Tensor, index: torch.Tensor) -> None:
        """Put the samples ``index`` into the rows ``places`` [n] bool, in place, before their first step."""
        fields = self.fields
        fields["index"].masked_scatter_(places, index)
        fields["step"].masked_fill_(places, 0)
        fields["total"].masked_fill_(places[:, None], 0.0)
        for name in COUNTS:
            if name in fields:
                fields[name].masked_fill_(places, 0)

    def keep(self, keep: torch.Tensor) -> None:
        self.fields = {name: value[keep] for name, value in self.fields.items()}


def piece_rows(model: nn.Module, inputs: torch.Tensor, counted: bool) -> int | None:
    """Most rows (samples x steps) per forward of a chunk: activations of at most
    `aoi.inference.MAX_CHUNK_BYTES`, as in full-T inference (`aoi.inference.row_bytes`); None (no limit)
    when counting (the counter needs one forward). Call it outside `aoi.neurons.streaming`: measuring
    a row may run a forward, which would carry state."""
    return None if counted else inference.MAX_CHUNK_BYTES // inference.row_bytes(model, inputs)


def run(model: nn.Module, flight: Flight, counter: OperationCounter | None, results: dict, left, piece: int | None):
    """Run ``flight`` until every sample exited, inside `aoi.neurons.streaming` and no_grad, writing into
    ``results``: forwards of the fewest steps ``left`` [T] to any sample's chunk end (`aoi.schedule.steps_left`),
    of at most ``piece`` rows each (`piece_rows`)."""
    layers = lif_layers(model)
    admitted = flight.fields["index"].shape[0]
    while True:
        k = int(left[flight.fields["step"]].min())
        outputs = flight.forward(model, k, layers, piece)
        stop = flight.advance(outputs, counter.take() if counter else ())
        if not stop.any():
            continue
        flight.record(results, stop)
        stopped = int(stop.sum())
        new = min(flight.N - admitted, stopped)
        places = stop if new == stopped else stop & (stop.cumsum(0) <= new)
        if new:
            flight.refill(places, torch.arange(admitted, admitted + new, device=stop.device))
            restart_samples(layers, places)
            admitted += new
        if new < stopped:
            keep = ~(stop & ~places)
            flight.keep(keep)
            keep_samples(layers, keep)
            if not flight.fields["index"].shape[0]:
                return


def exit_counts(outputs: torch.Tensor, stop_rule) -> torch.Tensor:
    """How many of the per-step logits ``outputs`` [T, M, K] ``stop_rule`` stops at each step t = 1..T:
    [T] long, by the same float64 sums as `Flight` (the post-hoc exits of `aoi.cutoff`)."""
    flight = Flight(outputs, outputs.shape[1], stop_rule, False)
    flight.positions(flight.T)
    flight.advance(outputs)
    return torch.bincount(flight.first(), minlength=flight.T).cpu()
