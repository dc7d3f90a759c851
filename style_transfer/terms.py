"""The terms of the total cost J, each with its name, its label and its weight from the config.

``J = Σ weight · value`` over the terms of :data:`TERMS` whose weight is above 0. The objective computes them
(engine.Objective), every frame carries them weighted (``Frame.terms``), and the faces (the Space's status and
plot, the CLI's progress) only display them. Adding a term is its loss function (``losses.py``), the config field
of its weight (``config.py``), and one line in :data:`TERMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from . import losses
from .config import StyleConfig


class Targets(Protocol):
    """What a term's cost may read from the objective at one scale: its config and the targets, computed once."""

    cfg: StyleConfig
    content_target: torch.Tensor
    style_layers: tuple[str, ...]
    layer_weights: tuple[float, ...]
    style_targets: Sequence[torch.Tensor]
    background_targets: Sequence[torch.Tensor] | None
    masks: Sequence[torch.Tensor] | None
    temporal: tuple[torch.Tensor, torch.Tensor] | None  # a video frame's (warped previous frame, reliability)


# A term's cost: the targets, the image and the network's activations (by layer name) -> its unweighted value.
Cost = Callable[[Targets, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Term:
    """One term of J: ``name`` (a key of ``Frame.losses``), ``label`` (how the faces show it weighted), its
    weight in a config, and how its value is computed."""

    name: str
    label: str
    weight: Callable[[StyleConfig], float]
    cost: Cost
    # The objective's per-run data the term needs (an attribute of Targets); without it the term does not count.
    requires: str | None = None


@dataclass(frozen=True)
class TermValue:
    """A term of one frame: its value, the weight it has in J, and the weighted value that J adds up."""

    name: str
    label: str
    weight: float
    value: float

    @property
    def weighted(self) -> float:
        """``weight · value``: this term's share of J."""
        return self.weight * self.value


def _content(objective: Targets, image: torch.Tensor, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return losses.content_cost(objective.content_target, acts[objective.cfg.content_layer])


def _style(objective: Targets, image: torch.Tensor, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The style cost over the style layers; with a mask, on the masked region, plus the background styles on the
    rest when there are any."""
    style_acts = [acts[n] for n in objective.style_layers]
    weights = objective.layer_weights
    j_style = losses.style_cost(objective.style_targets, style_acts, weights, objective.masks)
    if objective.background_targets is not None and objective.masks is not None:
        inverse = [1.0 - m for m in objective.masks]
        j_style = j_style + losses.style_cost(objective.background_targets, style_acts, weights, inverse)
    return j_style


def _temporal(objective: Targets, image: torch.Tensor, acts: Mapping[str, torch.Tensor]) -> torch.Tensor:
    assert objective.temporal is not None  # Term.requires
    return losses.temporal_cost(image, *objective.temporal)


# The terms in the order J adds them up (and the faces list them).
TERMS: tuple[Term, ...] = (
    Term("content", "α·content", lambda cfg: cfg.content_weight, _content),
    Term("style", "β·style", lambda cfg: cfg.effective_style_weight, _style),
    Term("tv", "smoothness (TV)", lambda cfg: cfg.effective_tv_weight, lambda o, image, acts: losses.tv_cost(image)),
    Term("temporal", "temporal", lambda cfg: cfg.temporal_weight, _temporal, requires="temporal"),
)


def active_terms(cfg: StyleConfig, given: object = None) -> tuple[tuple[Term, float], ...]:
    """The terms that count in a run of ``cfg`` (weight above 0, and the data they require present on ``given``,
    the objective), each with its weight."""
    weighted = ((term, float(term.weight(cfg))) for term in TERMS)
    return tuple(
        (term, weight)
        for term, weight in weighted
        if weight and (term.requires is None or getattr(given, term.requires, None) is not None)
    )
