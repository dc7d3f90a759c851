"""The whole picture's objective, computed tile by tile: the same J and the same gradient, with the network's memory
bounded by one tile instead of the picture.

Why it is exact: the style cost sees the picture only through each layer's Gram ``G = Σ_p a_p a_pᵀ`` (a sum over
feature positions ``p``, weighted by a mask where there is one), and the content and smoothing costs are sums over
positions too. So each step makes two passes over the tiles:

1. without gradients, every tile's share of every sum (its *interior* feature positions only, so each position is
   counted once): the full Grams, hence J and ``M = ∂J/∂G`` for every Gram;
2. with gradients, per tile, the surrogate ``Σ ⟨M, G_tile⟩ + α·content_tile + tv·tv_tile``: its gradient with
   respect to the tile's pixels is exactly that tile's share of ``∂J/∂x`` (``∂J/∂a_p = (M + Mᵀ)·a_p`` is all the
   style cost asks of a position), added into the picture's gradient.

A tile's interior features equal the whole picture's when the tile reaches past its interior by the deepest layer's
receptive-field radius (the *halo*) and starts on the pooling grid; at the picture's border a tile has no halo, and
the conv's zero padding there is the whole picture's. Deeper blocks need less of the halo (only what the convs still
to come can see), so each block's input is cut to that (:func:`block_margins`): the values the cut corrupts at its
edge never reach an interior feature. Pass 1 holds no activations for a backward (about a third of what pass 2's
tiles hold), so it may run over fewer, larger tiles of its own (``sum_plan``), which spares halos; when it runs over
pass 2's tiles instead, its last tile is computed with gradients and kept, so pass 2 skips that forward. Nothing is
copied to the host.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import accel, losses
from .config import StyleConfig
from .layers import LAYER_NAMES, VGG19_BLOCKS
from .model import VGGFeatures
from .terms import Term, TermValue, active_terms

# The terms this objective can split over tiles: sums over positions (content, smoothing) and the Gram-based style
# cost. A new term of J needs its tile-by-tile share here too before tiled runs can use it.
TILED_TERMS = ("content", "style", "tv")


def _block(name: str) -> int:
    return int(name[5])  # "block4_conv2" -> 4


def layer_reach(layers: Sequence[str]) -> tuple[int, int]:
    """``(align, reach)`` for a network run to the deepest of ``layers``: the pooling grid (2 ** poolings before
    it) and how far, in pixels, a feature there sees beyond its own ``align``-pixel cell on each side.

    Walks VGG-19's 3×3 convs (each widens the field by one step of the current stride on each side) and 2×2
    poolings (half a cell: a field of size ``s`` becomes ``s + stride``). For block5_conv1: align 16, reach 70
    (a 156 px field).
    """
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    size, stride, index = 1, 1, 0
    for convs in VGG19_BLOCKS:
        for _ in convs:
            size += 2 * stride
            if index == deepest:
                return stride, (size - stride) // 2
            index += 1
        size += stride
        stride *= 2
    raise AssertionError("unreachable: every layer is in VGG19_BLOCKS")


def halo_for(layers: Sequence[str]) -> tuple[int, int]:
    """``(align, halo)``: tile boundaries on multiples of ``align``; the halo is the reach rounded up to it."""
    align, reach = layer_reach(layers)
    return align, math.ceil(reach / align) * align


@functools.cache
def block_margins(layers: tuple[str, ...]) -> dict[int, int]:
    """Per block ``b`` (1-5): how far past a tile's interior, in pixels, the activations entering block ``b`` are
    still needed by the layers to come, up to the deepest of ``layers``: the strides of the 3×3 convs from ``b`` on
    (a pooling adds nothing on the aligned grid), rounded up to the pooling grid. Block 1's is the halo; for
    block5_conv1: 80, 80, 64, 48, 16. Cropping each block's input to it skips work no interior feature needs."""
    align, _ = layer_reach(layers)
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    strides = [2 ** (block - 1) for block, convs in enumerate(VGG19_BLOCKS, start=1) for _ in convs][: deepest + 1]
    blocks = [block for block, convs in enumerate(VGG19_BLOCKS, start=1) for _ in convs][: deepest + 1]
    margins = {}
    for start in range(1, len(VGG19_BLOCKS) + 1):
        need = sum(stride for stride, block in zip(strides, blocks, strict=True) if block >= start)
        margins[start] = math.ceil(need / align) * align
    return margins


@dataclass(frozen=True)
class Tile:
    """One tile: its interior ``[y0, y1) × [x0, x1)`` (pixels it owns) inside its input ``[ty0, ty1) × [tx0, tx1)``
    (the interior plus the halo on every side that touches another tile)."""

    y0: int
    y1: int
    x0: int
    x1: int
    ty0: int
    ty1: int
    tx0: int
    tx1: int

    @property
    def pixels(self) -> int:
        """Pixels of the tile's input (what its forward and backward cost)."""
        return (self.ty1 - self.ty0) * (self.tx1 - self.tx0)

    def kept(self, block: int, margins: dict[int, int]) -> tuple[int, int, int | None, int | None]:
        """``(top, left, bottom, right)`` in pixels of what ``block``'s input keeps: the interior plus the block's
        margin on the sides that have a halo (None: to the input's end). Block 1 sees the tile's whole input."""
        if block == 1:
            return self.ty0, self.tx0, None, None
        margin = margins[block]
        top, left = max(self.ty0, self.y0 - margin), max(self.tx0, self.x0 - margin)
        bottom = self.y1 + margin if self.ty1 > self.y1 + margin else None
        right = self.x1 + margin if self.tx1 > self.x1 + margin else None
        return top, left, bottom, right


def split(length: int, parts: int, align: int) -> list[int]:
    """Boundaries ``0 = b0 < b1 < … < b_parts = length`` of ``parts`` near-equal spans, the inner ones on multiples
    of ``align``; fewer spans when ``length`` has fewer whole cells."""
    cells = max(1, length // align)
    parts = max(1, min(parts, cells))
    inner = sorted({round(i * cells / parts) * align for i in range(1, parts)})
    return [0, *(b for b in inner if 0 < b < length), length]


def grid(height: int, width: int, rows: int, cols: int, align: int, halo: int) -> list[Tile]:
    """The tiles of a ``rows × cols`` split of a ``height × width`` picture (row by row)."""
    ys, xs = split(height, rows, align), split(width, cols, align)
    tiles = []
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            tiles.append(
                Tile(
                    y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)
                )
            )
    return tiles


Planner = Callable[[int, int], list[Tile]]


def _interior(act: torch.Tensor, tile: Tile, name: str, margins: dict[int, int]) -> torch.Tensor:
    """The tile's interior feature positions in ``act``, the tile's activations at layer ``name`` (``factor`` times
    smaller than the picture, its block's input kept as :meth:`Tile.kept` says). Boundaries are multiples of
    ``factor``, or the picture's end (floored like pooling)."""
    factor = _factor(name)
    top, left, _, _ = tile.kept(_block(name), margins)
    r0, c0 = top // factor, left // factor
    return act[:, :, tile.y0 // factor - r0 : tile.y1 // factor - r0, tile.x0 // factor - c0 : tile.x1 // factor - c0]


def _trimmer(tile: Tile, margins: dict[int, int]) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """``trim(block, x)`` for the model: crops the activations entering ``block`` to what that block keeps."""

    def trim(block: int, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (block - 1)
        top0, left0, _, _ = tile.kept(block - 1, margins)
        top, left, bottom, right = tile.kept(block, margins)
        rows = slice((top - top0) // factor, None if bottom is None else (bottom - top0) // factor)
        cols = slice((left - left0) // factor, None if right is None else (right - left0) // factor)
        return x[:, :, rows, cols]

    return trim


def _region(full: torch.Tensor, tile: Tile, factor: int) -> torch.Tensor:
    """The same positions in a whole-picture tensor at that layer (a target or a mask)."""
    return full[:, :, tile.y0 // factor : tile.y1 // factor, tile.x0 // factor : tile.x1 // factor]


def _factor(name: str) -> int:
    return 2 ** (_block(name) - 1)


def _weighted_gram(a: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``Σ_p w_p² a_p a_pᵀ`` (un-normalised), the way the untiled costs compute it."""
    return losses.gram(a) if weight is None else losses.weighted_gram(a, weight)


@dataclass
class _Gram:
    """One Gram the style cost compares: its layer, mask (whole-picture, at that layer) and target."""

    layer: int  # index into the style layers
    weight: torch.Tensor | None
    target: torch.Tensor
    norm: torch.Tensor | float  # what the whole picture's Gram is divided by (positions, or the mask's area)


class TiledObjective:
    """J at one scale, computed over ``plan``'s tiles; the same settings, targets and terms as the untiled
    objective (``engine.Objective``), with each target computed tile by tile too.

    :meth:`__call__` evaluates J (no gradients); :meth:`backward` evaluates J and adds ``∂J/∂image`` into
    ``image.grad`` (or, for an image computed from a leaf, back-propagates it there). ``plan`` gives the tiles that
    are differentiated; ``sum_plan`` (default: the same) those that only sum, without gradients: pass 1 and the
    targets.
    """

    def __init__(
        self,
        model: VGGFeatures,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        cfg: StyleConfig,
        plan: Planner,
        blend: Sequence[float] | None = None,
        mask: torch.Tensor | None = None,
        background: Sequence[torch.Tensor] = (),
        amp: bool = False,
        sum_plan: Planner | None = None,
    ) -> None:
        self.model, self.cfg, self.plan, self.amp = model, cfg, plan, amp
        self.sum_plan = sum_plan or plan
        self.terms: tuple[tuple[Term, float], ...] = active_terms(cfg)
        self.weights = {term.name: weight for term, weight in self.terms}
        untiled = [name for name in self.weights if name not in TILED_TERMS]
        if untiled:
            raise ValueError(
                f"memory_limit: the cost term(s) {', '.join(untiled)} cannot be computed tile by tile yet; "
                "raise the memory limit so the picture fits whole, or set their weight to 0"
            )
        self.style_layers = cfg.style_layers
        self.layers = tuple(dict.fromkeys((cfg.content_layer, *cfg.style_layers)))
        self.shape = tuple(content.shape[-2:])
        self.tiles = plan(*self.shape)
        self.sum_tiles = self.sum_plan(*self.shape)
        self.keeps_last = self.sum_tiles == self.tiles  # pass 1 can hand its last tile to pass 2
        weights = cfg.layer_weights
        with torch.no_grad():
            self.content_target = self._features_of(content, cfg.content_layer)
            targets = self._blended_grams(styles, blend)
            layer_masks = self._layer_masks(mask) if mask is not None else None
            self.grams = self._specs(targets, layer_masks, weights, inverse=False)
            if background and layer_masks is not None:
                inverse = [1.0 - m for m in layer_masks]
                self.grams += self._specs(self._blended_grams(background, None), inverse, weights, inverse=True)
        self.layer_weights = weights

    # --- targets --------------------------------------------------------------------------------------------------
    def features(self, crop: torch.Tensor, layers: tuple[str, ...], tile: Tile) -> dict[str, torch.Tensor]:
        """``tile``'s activations (``crop`` is its input), each block's input cut to what its layers still need,
        under bf16 autocast when enabled (as the untiled objective). Read them with :func:`_interior`."""
        with accel.autocast(crop.device, self.amp):
            return self.model(crop, layers, _trimmer(tile, block_margins(layers)))

    def _crop(self, image: torch.Tensor, tile: Tile) -> torch.Tensor:
        return image[:, :, tile.ty0 : tile.ty1, tile.tx0 : tile.tx1]

    def _features_of(self, image: torch.Tensor, layer: str) -> torch.Tensor:
        """``layer``'s activations of the whole ``image``, assembled from its tiles' interiors. Kept in the
        network's dtype: a bf16 value is exact in fp32, and the cost casts it (half the memory of an fp32 copy)."""
        factor, (height, width) = _factor(layer), image.shape[-2:]
        full: torch.Tensor | None = None
        for tile in self.sum_plan(height, width):
            acts = self.features(self._crop(image, tile), (layer,), tile)
            part = _interior(acts[layer], tile, layer, block_margins((layer,)))
            if full is None:
                full = part.new_empty((1, part.shape[1], height // factor, width // factor))
            _region(full, tile, factor).copy_(part)
        assert full is not None
        return full

    def _blended_grams(self, images: Sequence[torch.Tensor], blend: Sequence[float] | None) -> list[torch.Tensor]:
        """The weighted mean of the images' normalised Grams per style layer, each Gram summed over tiles."""
        weights = list(blend) if blend else [1.0] * len(images)
        if len(weights) != len(images):
            raise ValueError(f"style_blend_weights: {len(weights)} weights given for {len(images)} style images")
        total = float(sum(weights))
        grams: list[torch.Tensor | float] = [0.0] * len(self.style_layers)
        for image, weight in zip(images, weights, strict=True):
            if weight == 0:
                continue
            height, width = image.shape[-2:]
            raw: list[torch.Tensor | float] = [0.0] * len(self.style_layers)
            for tile in self.sum_plan(height, width):
                acts = self.features(self._crop(image, tile), self.style_layers, tile)
                margins = block_margins(self.style_layers)
                for i, name in enumerate(self.style_layers):
                    raw[i] = raw[i] + losses.gram(_interior(acts[name], tile, name, margins))
            for i, name in enumerate(self.style_layers):
                positions = float((height // _factor(name)) * (width // _factor(name)))
                grams[i] = grams[i] + (weight / total) * (raw[i] / positions)
        return grams  # type: ignore[return-value]

    def _layer_masks(self, mask: torch.Tensor) -> list[torch.Tensor]:
        """The mask at each style layer's resolution, area-averaged (as the untiled objective)."""
        height, width = mask.shape[-2:]
        return [F.adaptive_avg_pool2d(mask, (height // _factor(n), width // _factor(n))) for n in self.style_layers]

    def _specs(
        self,
        targets: list[torch.Tensor],
        masks: list[torch.Tensor] | None,
        weights: Sequence[float],
        inverse: bool,
    ) -> list[_Gram]:
        specs = []
        height, width = self.shape
        for i, name in enumerate(self.style_layers):
            if not weights[i]:
                continue  # as losses.style_cost: a layer weighted 0 costs nothing
            if masks is None:
                norm: torch.Tensor | float = float((height // _factor(name)) * (width // _factor(name)))
                specs.append(_Gram(i, None, targets[i], norm))
            else:
                specs.append(_Gram(i, masks[i], targets[i], masks[i].sum().clamp_min(1e-8)))
        return specs

    # --- the cost -------------------------------------------------------------------------------------------------
    def _tile_terms(
        self, crop: torch.Tensor, tile: Tile
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """The tile's share of every sum: each Gram (un-normalised), the content cost and the smoothing cost."""
        acts = self.features(crop, self.layers, tile)
        margins = block_margins(self.layers)
        grams = []
        for spec in self.grams:
            name = self.style_layers[spec.layer]
            weight = None if spec.weight is None else _region(spec.weight, tile, _factor(name))
            grams.append(_weighted_gram(_interior(acts[name], tile, name, margins), weight))
        content_layer = self.cfg.content_layer
        factor = _factor(content_layer)
        a_g = _interior(acts[content_layer], tile, content_layer, margins)
        target = _region(self.content_target, tile, factor)
        n_c, (height, width) = a_g.shape[1], self.content_target.shape[-2:]
        j_content = (target.float() - a_g.float()).pow(2).sum() / (4.0 * height * width * n_c)
        j_tv = self._tile_tv(crop, tile) if "tv" in self.weights else None
        return grams, j_content, j_tv

    def _tile_tv(self, crop: torch.Tensor, tile: Tile) -> torch.Tensor:
        """The smoothing cost of the neighbour pairs whose first pixel is in the tile's interior (``losses.tv_cost``
        summed over tiles is the whole picture's); the pixel after the interior is in the halo or past the edge."""
        iy0, iy1, ix0, ix1 = tile.y0 - tile.ty0, tile.y1 - tile.ty0, tile.x0 - tile.tx0, tile.x1 - tile.tx0
        ey, ex = min(iy1 + 1, crop.shape[-2]), min(ix1 + 1, crop.shape[-1])
        dx = crop[..., iy0:iy1, ix0 + 1 : ex] - crop[..., iy0:iy1, ix0 : ex - 1]
        dy = crop[..., iy0 + 1 : ey, ix0:ix1] - crop[..., iy0 : ey - 1, ix0:ix1]
        height, width = self.shape
        return (dx.float().pow(2).sum() + dy.float().pow(2).sum()) / float(height * width)

    def _style(self, raws: Sequence[torch.Tensor]) -> torch.Tensor:
        """J_style from the whole picture's un-normalised Grams (``losses.style_layer_cost``'s formula)."""
        total = raws[0].new_zeros(()) if raws else torch.zeros(())
        for spec, raw in zip(self.grams, raws, strict=True):
            n_c = raw.shape[-1]
            cost = (spec.target - raw / spec.norm).pow(2).sum() / (4.0 * n_c * n_c)
            total = total + self.layer_weights[spec.layer] * cost
        return total

    def _terms(
        self, j_content: torch.Tensor, j_style: torch.Tensor, j_tv: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """J and the counted terms' unweighted values by name, as the untiled objective returns them."""
        computed = {"content": j_content, "style": j_style, "tv": j_tv}
        values: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for term, weight in self.terms:
            values[term.name] = computed[term.name]
            total = weight * values[term.name] if total is None else total + weight * values[term.name]
        values["total"] = total
        return total, values

    def describe(self, values: dict[str, float]) -> tuple[TermValue, ...]:
        """The terms of a frame whose unweighted ``values`` (by name) were read back: each with label and weight."""
        return tuple(TermValue(term.name, term.label, weight, values[term.name]) for term, weight in self.terms)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total cost of ``image`` and its unweighted terms (tensors, no host sync), without gradients."""
        with torch.no_grad():
            raws, j_content, j_tv, _ = self._sums(image, keep_last=False)
            return self._terms(j_content, self._style(raws), j_tv)

    def _sums(
        self, image: torch.Tensor, keep_last: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None, tuple | None]:
        """Pass 1: every sum over all of ``sum_plan``'s tiles (detached). With ``keep_last``, when those are pass
        2's tiles, the last is computed with gradients and returned as ``(tile, crop, its terms)`` for pass 2."""
        raws: list[torch.Tensor] = []
        j_content = image.new_zeros((), dtype=torch.float32)
        j_tv = image.new_zeros((), dtype=torch.float32) if "tv" in self.weights else None
        kept = None
        keep_last = keep_last and self.keeps_last
        for index, tile in enumerate(self.sum_tiles):
            last = keep_last and index == len(self.sum_tiles) - 1
            with torch.set_grad_enabled(last):
                crop = self._crop(image.detach(), tile)
                if last:
                    crop = crop.clone().requires_grad_(True)
                terms = self._tile_terms(crop, tile)
            grams, content, tv = terms
            raws = (
                [g.detach() for g in grams] if not raws else [r + g.detach() for r, g in zip(raws, grams, strict=True)]
            )
            j_content = j_content + content.detach()
            if j_tv is not None and tv is not None:
                j_tv = j_tv + tv.detach()
            if last:
                kept = (tile, crop, terms)
        return raws, j_content, j_tv, kept

    def backward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total cost of ``image`` and its terms, with ``∂J/∂image`` added into ``image.grad`` (a leaf) or
        back-propagated through ``image``'s graph (an image computed from a leaf, e.g. a projection)."""
        with torch.no_grad():
            raws, j_content, j_tv, kept = self._sums(image, keep_last=True)
        # M = ∂(β·J_style)/∂G for every Gram: tiny (C × C) tensors, a few kernels.
        with torch.enable_grad():
            leaves = [r.requires_grad_(True) for r in raws]
            j_style = self._style(leaves)
            style_weight = self.weights.get("style", 0.0)
            directions = torch.autograd.grad(style_weight * j_style, leaves) if leaves and style_weight else None
        j_style = j_style.detach()
        grad = torch.zeros_like(image)  # becomes image.grad (a leaf): no extra copy
        rest = self.tiles
        if kept is not None:
            tile, crop, terms = kept  # first, so that its graph is freed before any other tile's is built
            with torch.enable_grad():
                self._surrogate(terms, directions).backward()
            self._add(grad, crop, tile)
            del kept, terms, crop
            rest = self.tiles[:-1]
        for tile in rest:
            with torch.enable_grad():
                crop = self._crop(image.detach(), tile).clone().requires_grad_(True)
                self._surrogate(self._tile_terms(crop, tile), directions).backward()
            self._add(grad, crop, tile)
        if image.is_leaf:
            image.grad = grad if image.grad is None else image.grad.add_(grad)
        else:
            image.backward(grad)
        return self._terms(j_content, j_style, j_tv)

    def _surrogate(
        self,
        terms: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None],
        directions: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        """A scalar whose gradient is the tile's share of ∂J/∂x: ⟨M, G_tile⟩ per Gram, plus the local terms."""
        grams, j_content, j_tv = terms
        out = self.weights.get("content", 0.0) * j_content
        if directions is not None:
            for direction, gram in zip(directions, grams, strict=True):
                out = out + (direction * gram).sum()
        if j_tv is not None:
            out = out + self.weights["tv"] * j_tv
        return out

    @staticmethod
    def _add(grad: torch.Tensor, crop: torch.Tensor, tile: Tile) -> None:
        """Add the tile's pixel gradient (halo included) into the picture's."""
        if crop.grad is not None:
            grad[:, :, tile.ty0 : tile.ty1, tile.tx0 : tile.tx1].add_(crop.grad)
