"""Reuse across time: what did not change keeps its output, the network skips it.

A video is not a pile of unrelated pictures: a drawing held on twos, a still wall behind a
speaker, a title card. For each network pass, every frame is cut into a grid of tiles (cores of
``REUSE_TILE`` pixels, each seen with ``DEFAULT_OVERLAP`` pixels of context), and each tile's
window (core and context) is compared with the *reference*: the source the output there was
computed from (kept per BLOCK x BLOCK block), not the previous frame, so a slow change cannot
creep past the threshold frame by frame.

- no tile changed: the frame is the previous output, and the network does not run;
- some changed: inside them, the blocks that changed (grown by a margin; or all of a tile whose
  kept part moved as a whole: a fade, noise) take in the new output, feathered over the next
  block; everywhere else the previous output stays, exactly, with its reference. The network
  sees those blocks with CONTEXT pixels around them (windows merged where they overlap; the
  windows of a batch in batches of one shape), or the whole frame where that costs less;
- every tile changed (a scene cut, a keyframe that redraws the picture): the whole frame's
  output, exactly as without reuse.

The state lives in one :class:`FrameReuse` per run of consecutive frames (a segment), whose first
frame is computed whole, so a segment renders the same bytes wherever and whenever it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from vidsr.planes import Planes
from vidsr.upscale.tiling import DEFAULT_OVERLAP, Span

__all__ = ["BLOCK", "REUSE_TILE", "ChangeTest", "FrameReuse", "PassReuse", "ReuseCount", "work_needed"]

# Input pixels of a tile's core (a multiple of BLOCK, as DEFAULT_OVERLAP is): what the change test
# decides on (each tile seen with DEFAULT_OVERLAP pixels of context) and what a fade or noise takes
# in whole. The network sees only the blocks taken in, with CONTEXT pixels around them.
REUSE_TILE = 64
BLOCK = 4  # pixels: the side of the blocks a small moving object is looked for in (see ChangeTest)
# Input pixels of context around what is computed again: the most DEFAULT_OVERLAP gives a tile of
# run_tiled, beyond the reach of realesr-animevideov3 (18 pixels: 18 3x3 convolutions).
CONTEXT = DEFAULT_OVERLAP

Network = Callable[[torch.Tensor], torch.Tensor]  # B x 3 x h x w -> B x 3 x h*scale x w*scale
Blocks = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChangeTest:
    """When a tile's window counts as changed, in 8-bit levels of the network's RGB input
    (0..255, averaged over the three channels; 10-bit sources are compared in the same units).

    Measured with ``python bench/temporal.py --thresholds`` (a 1280x720 cartoon area-downscaled
    to 320x180, libx264 with a keyframe every 12 frames unless said; each frame against an earlier
    one, the worst 128-pixel window of the frame: 64 of core, 32 of context), levels of mean
    absolute difference / |signed mean| / worst 4x4 block:
      still, between keyframes, crf 18 / 28 ........... 0.43 / 0.26 / 6.3     0.04 / 0.03 / 1.9   kept
      still, after a keyframe, crf 18 / 23 / 28 ........ 3.4 / 4.8 / 6.6 mean                      changed
      sensor noise σ 3 crf 20 (x264 smooths it away) ... 0.56 / 0.23 / 8.1                          kept
      sensor noise σ 3 crf 14, grain σ 6 crf 20 ........ 2.6 / 4.3 mean                             changed
      fade of 0.4 % a frame, after 1 / 3 / 8 frames .... 0.57 / 1.87 / 5.45 signed                  kept, changed
      a 6x6 white square moved by 1 pixel .............. 0.45 / 0.17 / 25.1                         changed
    So: x264's noise between keyframes stays far under 2 levels on average (after a keyframe the
    picture is drawn anew, and computed anew); a fade shows in the signed mean first; a small
    moving object only in its blocks, which compression noise keeps under 8.3 (8x8 blocks would
    dilute the square to 11.5, under their noise of 12.8 at crf 28: so 4x4).
    """

    mean: float = 2.0  # mean absolute difference over the window
    signed_mean: float = 1.0  # |mean difference|: a fade moves every pixel the same way
    block_mean: float = 12.0  # mean absolute difference of the worst BLOCK x BLOCK block: a small moving object
    # A tile changed by its mean difference alone (no shift of its mean, no block standing out:
    # sensor noise, grain) is computed, but only this share of the new output is taken in, the
    # rest stays the previous output: a running average where noise would make the output boil.
    noise_blend: float = 1.0
    # Inside a recomputed tile, the new output is taken in only around the BLOCK x BLOCK blocks whose
    # mean absolute difference exceeds ``adopt_level`` (grown by ``adopt_margin`` blocks, then
    # feathered over the next block): elsewhere the tile keeps its previous output, exactly, and the
    # reference it was computed from, so a drawing moving over a still background re-renders the
    # drawing, not the background around it. Unless what would be kept changed as a whole (its own
    # mean or signed mean beyond ``mean`` / ``signed_mean``: a fade, noise, a wide soft change): then
    # the tile takes all of the new output, as a frame computed whole after a scene cut does.
    # 6 levels: above the worst block of x264's noise between keyframes at crf 18 (6.3 is the worst
    # of a frame, most blocks stay under 1). The margin: the network's response to a 4x4 block
    # changed by 13 levels reaches 4 and 8 pixels at most 3.7 and 3.5 levels (mean 0.9, 0.7), 12
    # pixels 0.9 (0.2), none beyond 18 (realesr-animevideov3), so what stays old, 10 pixels and more
    # from a changed block with a margin of 1 block, differs from computing it anew as the network's
    # response to noise does. bench/temporal.py --adopt-margin (16 frames, lossless): margin 2 -> 1,
    # shimmer on threes 1.44x -> 1.10x bicubic, moving square 0.77x -> 0.48x; PSNR to the whole
    # render 49.0 -> 48.7 dB (worst frame 43.9 both), to the truth 24.46 -> 24.45 dB (whole 24.50).
    adopt_level: float = 6.0
    adopt_margin: int = 1
    adopt_blocks: bool = True  # False: a recomputed tile takes all of its new output


@dataclass(frozen=True)
class ReuseCount:
    """Network work in tiles: how many the frames asked for, and how many were kept instead; and
    in pixels: how many the network saw (what was taken in, with its context) against the frames'."""

    tiles: int = 0
    reused: int = 0
    frames: int = 0
    frames_skipped: int = 0  # frames for which the network did not run at all
    network_pixels: int = 0  # input pixels through the network, context included
    frame_pixels: int = 0  # input pixels of the frames: what computing each whole costs

    def __add__(self, other: ReuseCount) -> ReuseCount:
        return ReuseCount(
            self.tiles + other.tiles,
            self.reused + other.reused,
            self.frames + other.frames,
            self.frames_skipped + other.frames_skipped,
            self.network_pixels + other.network_pixels,
            self.frame_pixels + other.frame_pixels,
        )

    @property
    def work(self) -> float:
        """The network's work over that of every frame whole (1 when nothing was counted)."""
        return self.network_pixels / self.frame_pixels if self.frame_pixels else 1.0

    @property
    def share(self) -> float:
        """The share of tiles reused, 0..1 (0 when nothing was counted)."""
        return self.reused / self.tiles if self.tiles else 0.0

    def describe(self) -> str:
        """ "61 % of tiles reused" ("" when reuse was off)."""
        return f"{self.share * 100:.0f} % of tiles reused" if self.tiles else ""


@dataclass(frozen=True)
class _Window:
    """Input rows ``top``..``bottom`` and columns ``left``..``right`` (stops excluded) of a part of
    the frame computed on its own: what it takes in, with CONTEXT pixels around (or the frame's edge)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.bottom)

    @property
    def cols(self) -> slice:
        return slice(self.left, self.right)

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    def overlaps(self, other: _Window) -> bool:
        return (
            self.top < other.bottom and other.top < self.bottom and self.left < other.right and other.left < self.right
        )

    def union(self, other: _Window) -> _Window:
        return _Window(
            min(self.top, other.top),
            max(self.bottom, other.bottom),
            min(self.left, other.left),
            max(self.right, other.right),
        )


@dataclass(frozen=True)
class _Decision:
    """What one frame needs: ``whole``, the network on the whole frame; else ``windows``, the parts
    of it to compute on their own; neither: nothing, the previous output stands. ``adopt``: per
    input pixel (1 x h x w), the share of the new output taken in over the previous one (1 around
    what changed, feathered to 0 where the previous output stays exactly); None: all of it."""

    whole: bool
    windows: tuple[_Window, ...] = ()
    adopt: torch.Tensor | None = None


def _grid_spans(length: int, tile: int) -> list[Span]:
    """Cores of ``tile`` pixels from 0 (the last one shorter), each widened by DEFAULT_OVERLAP
    towards its neighbours: every edge on a multiple of BLOCK, or the frame's."""
    edges = [*range(0, length, tile), length]
    count = len(edges) - 1
    return [
        Span(
            max(0, edges[i] - DEFAULT_OVERLAP),
            min(length, edges[i + 1] + DEFAULT_OVERLAP),
            blend_before=i > 0,
            blend_after=i < count - 1,
        )
        for i in range(count)
    ]


class _Grid:
    """The tiles of one frame size the change test looks at: cores of ``tile`` pixels, each seen
    with DEFAULT_OVERLAP pixels of context."""

    def __init__(self, height: int, width: int, tile: int) -> None:
        self.tile, self.height, self.width = tile, height, width
        self.rows, self.cols = _grid_spans(height, tile), _grid_spans(width, tile)

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def block_range(self, span: Span) -> slice:
        """The BLOCK-sized blocks a window covers (its edges are on block edges, or the frame's)."""
        return slice(span.start // BLOCK, -(-span.stop // BLOCK))

    def core_blocks(self, row: int, col: int) -> tuple[slice, slice]:
        """The blocks of tile (``row``, ``col``)'s core."""
        tile = self.tile // BLOCK
        return slice(row * tile, (row + 1) * tile), slice(col * tile, (col + 1) * tile)

    def tiles_to_blocks(self, tiles: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """A per-tile mask per block."""
        tile = self.tile // BLOCK
        blocks = tiles.repeat(tile, axis=0).repeat(tile, axis=1)
        return blocks[: -(-self.height // BLOCK), : -(-self.width // BLOCK)]


@dataclass
class PassReuse:
    """The reuse state of one network pass: the source each output pixel was computed from
    (per block), and the last output."""

    tile: int = REUSE_TILE
    test: ChangeTest = field(default_factory=ChangeTest)
    count: ReuseCount = field(default_factory=ReuseCount)
    _grid: _Grid | None = None
    _shape: tuple[int, int, int] = (0, 0, 0)  # (height, width, scale) the grid is of
    _reference: torch.Tensor | None = None  # 3 x h x w
    _output: torch.Tensor | None = None  # 3 x h*scale x w*scale

    def run(self, frames: torch.Tensor, network: Network, scale: int) -> tuple[torch.Tensor, list[bool]]:
        """``network`` at ``scale`` over ``frames`` (B x 3 x h x w, in order), reusing what did
        not change; with, per frame, whether its output is the previous frame's, untouched."""
        with _one_thread(frames.device):
            decisions = [self._decide(frame, scale) for frame in frames]
        whole = [index for index, decision in enumerate(decisions) if decision.whole]
        whole_outputs = dict(zip(whole, network(frames[whole]))) if whole else {}
        window_outputs = self._run_windows(frames, decisions, network)
        with _one_thread(frames.device):
            outputs = self._compose(decisions, whole_outputs, window_outputs, scale)
        unchanged = [not decision.whole and not decision.windows for decision in decisions]
        return torch.stack(outputs), unchanged

    def _compose(
        self,
        decisions: list[_Decision],
        whole_outputs: dict[int, torch.Tensor],
        window_outputs: dict[tuple[int, _Window], torch.Tensor],
        scale: int,
    ) -> list[torch.Tensor]:
        """Each frame's output: the previous one with its share of what was computed taken in."""
        outputs: list[torch.Tensor] = []
        for index, decision in enumerate(decisions):
            previous, adopt = self._output, decision.adopt
            if decision.whole and (adopt is None or previous is None):
                self._output = whole_outputs[index]
            elif decision.whole:
                assert adopt is not None and previous is not None
                # In place in the new output (a frame's worth of memory less to allocate): exactly the
                # previous pixels where the share is 0 and the new ones where it is 1, as torch.lerp
                # computes from the nearer end.
                self._output = whole_outputs[index].lerp_(previous, _enlarged(1.0 - adopt, scale))
            elif decision.windows:
                assert adopt is not None and previous is not None
                output = previous.clone()
                for window in decision.windows:
                    rows = slice(window.top * scale, window.bottom * scale)
                    cols = slice(window.left * scale, window.right * scale)
                    share = _enlarged(adopt[:, window.rows, window.cols], scale)
                    output[:, rows, cols] = torch.lerp(previous[:, rows, cols], window_outputs[index, window], share)
                self._output = output
            assert self._output is not None
            outputs.append(self._output)
        return outputs

    def _decide(self, frame: torch.Tensor, scale: int) -> _Decision:
        """Which tiles of ``frame`` changed against the reference, which of their blocks take in
        the new output and what the network must see for them; the reference follows what is
        taken in."""
        height, width = frame.shape[-2:]
        grid, reference = self._grid, self._reference
        if grid is None or reference is None or self._shape != (height, width, scale):
            self._grid = _Grid(height, width, self.tile)
            self._shape = (height, width, scale)
            return self._compute_whole(frame, self._grid)
        sums = _block_sums(frame, reference)
        changed, noise = self._changed_tiles(sums, grid)
        if changed.all() and (self.test.noise_blend == 1.0 or not noise.any()):
            return self._compute_whole(frame, grid)  # a new picture: a scene cut, a keyframe
        pixels = height * width
        kept_tiles = grid.count - int(changed.sum())
        if not changed.any():
            self.count += ReuseCount(grid.count, kept_tiles, 1, 1, 0, pixels)
            return _Decision(whole=False)
        shares = self._shares(sums, grid, changed, noise)
        taken = _pixels(shares > 0, height, width).to(frame.device)
        reference.copy_(torch.where(taken, frame, reference))  # a kept block keeps the source of its output
        grown = _grown(shares)  # the new output fades out over the blocks around
        adopt = _feathered(grown, height, width).to(frame.device)
        windows = _windows(grown > 0, height, width)
        if sum(window.area for window in windows) >= pixels:  # cheaper whole than in windows with context
            self.count += ReuseCount(grid.count, kept_tiles, 1, 0, pixels, pixels)
            return _Decision(whole=True, adopt=adopt)
        work = sum(window.area for window in windows)
        self.count += ReuseCount(grid.count, kept_tiles, 1, 0, work, pixels)
        return _Decision(whole=False, windows=tuple(windows), adopt=adopt)

    def _compute_whole(self, frame: torch.Tensor, grid: _Grid) -> _Decision:
        self._reference = frame.clone()
        pixels = frame.shape[-2] * frame.shape[-1]
        self.count += ReuseCount(grid.count, 0, 1, 0, pixels, pixels)
        return _Decision(whole=True)

    def _changed_tiles(
        self, sums: tuple[Blocks, Blocks, Blocks], grid: _Grid
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """rows x columns: whether each tile's window differs from the reference by more than
        ``test`` allows, and whether by noise alone (its mean difference, nothing else). The
        differences are summed per block once for the frame (a few large operations), then per
        window over its blocks (in numpy: small arrays, no threads)."""
        signed, absolute, counts = sums
        signed_total, absolute_total, count_total = (_integral(blocks) for blocks in (signed, absolute, counts))
        block_means = absolute / np.maximum(counts, 1.0)
        test = self.test
        changed = np.zeros((len(grid.rows), len(grid.cols)), dtype=np.bool_)
        noise = np.zeros_like(changed)
        for r, rows in enumerate(grid.rows):
            block_rows = grid.block_range(rows)
            for c, cols in enumerate(grid.cols):
                block_cols = grid.block_range(cols)
                pixels = _box(count_total, block_rows, block_cols)
                structured = (
                    abs(_box(signed_total, block_rows, block_cols)) > test.signed_mean * pixels
                    or float(block_means[block_rows, block_cols].max()) > test.block_mean
                )
                busy = _box(absolute_total, block_rows, block_cols) > test.mean * pixels
                changed[r, c] = structured or busy
                noise[r, c] = busy and not structured
        return changed, noise

    def _shares(
        self,
        sums: tuple[Blocks, Blocks, Blocks],
        grid: _Grid,
        changed: npt.NDArray[np.bool_],
        noise: npt.NDArray[np.bool_],
    ) -> Blocks:
        """Per block, the share of the new output taken in there (0: the previous output stays).
        All of it around the blocks of changed tiles that changed beyond ``adopt_level`` (grown by
        ``adopt_margin``), and over the whole core of a changed tile where what it would keep did
        not stand still as a whole (a fade, noise: see ChangeTest), so a slow change is tracked,
        not stepped; a tile changed by noise alone takes ``noise_blend`` of it."""
        signed, absolute, counts = sums
        test = self.test
        whole_tiles: npt.NDArray[np.bool_] = np.array(changed, dtype=np.bool_)
        if test.adopt_blocks:
            moved = (absolute > test.adopt_level * np.maximum(counts, 1.0)) & grid.tiles_to_blocks(changed)
            adopted = _dilated(moved, test.adopt_margin)
            kept = ~_dilated(adopted, 2)  # what keeps its previous output: beyond the feather
            kept_sums = [_integral(blocks * kept) for blocks in (signed, absolute, counts)]
            for r, c in zip(*np.nonzero(changed)):
                whole_tiles[r, c] = noise[r, c] or self._kept_part_changed(kept_sums, grid, int(r), int(c))
            shares = adopted.astype(np.float64)
        else:
            shares = np.zeros(counts.shape)
        for r, c in zip(*np.nonzero(whole_tiles)):
            rows, cols = grid.core_blocks(int(r), int(c))
            share = test.noise_blend if noise[r, c] else 1.0
            shares[rows, cols] = np.maximum(shares[rows, cols], share)
        return shares

    def _kept_part_changed(self, kept_sums: list[Blocks], grid: _Grid, row: int, col: int) -> bool:
        """Whether what tile (``row``, ``col``) would keep moved as a whole beyond ``test``."""
        kept_signed, kept_absolute, kept_counts = kept_sums
        block_rows, block_cols = grid.block_range(grid.rows[row]), grid.block_range(grid.cols[col])
        pixels = _box(kept_counts, block_rows, block_cols)
        return pixels > 0 and (
            abs(_box(kept_signed, block_rows, block_cols)) > self.test.signed_mean * pixels
            or _box(kept_absolute, block_rows, block_cols) > self.test.mean * pixels
        )

    def _run_windows(
        self, frames: torch.Tensor, decisions: list[_Decision], network: Network
    ) -> dict[tuple[int, _Window], torch.Tensor]:
        """Every window of the batch through ``network``, the windows of one shape in one batch."""
        by_shape: dict[tuple[int, int], list[tuple[int, _Window]]] = {}
        for index, decision in enumerate(decisions):
            for window in decision.windows:
                by_shape.setdefault(window.shape, []).append((index, window))
        outputs: dict[tuple[int, _Window], torch.Tensor] = {}
        for members in by_shape.values():
            crops = torch.stack([frames[index][:, window.rows, window.cols] for index, window in members])
            outputs.update(zip(members, network(crops)))
        return outputs


@contextmanager
def _one_thread(device: torch.device) -> Generator[None]:
    """On the CPU, torch's own work for reuse (the change test, the cross-fade: many small
    operations on a frame) on one thread, the network's left on all of them. On a loaded machine
    each small operation spread over two threads waits for the busier one (Intel Xeon, Sapphire
    Rapids, 2 vCPUs shared with the encoder and other work): ``_block_sums`` of a 320x180 frame
    took 45-70 ms on 2 threads against 2.6-4.1 ms on one; in a render of bench/temporal.py's clip
    on threes (16 frames), the decisions took 1.3-1.8 s of wall time against 0.05-0.1 s, the
    cross-fades 0.8 s against 0.1-0.2 s, of 9-13 s in all. Results do not depend on it: every
    such operation computes each output element on its own."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _block_sums(frame: torch.Tensor, reference: torch.Tensor) -> tuple[Blocks, Blocks, Blocks]:
    """Per BLOCK x BLOCK block (the last row and column may be partial): the sum of the signed and
    of the absolute difference in levels (each pixel's mean over the channels), and the pixel count."""
    difference = ((frame - reference) * 255.0).to(torch.float32)
    signed = difference.mean(dim=0, keepdim=True)
    absolute = difference.abs_().mean(dim=0, keepdim=True)
    ones = torch.ones_like(signed)
    height, width = signed.shape[-2:]
    padding = (0, -width % BLOCK, 0, -height % BLOCK)
    stacked = F.pad(torch.cat((signed, absolute, ones)), padding)
    sums = F.avg_pool2d(stacked[None], BLOCK)[0].mul_(BLOCK * BLOCK).cpu().double().numpy()  # MPS has no float64
    return sums[0], sums[1], sums[2]


def _integral(blocks: Blocks) -> Blocks:
    """Summed-area table with a zero row and column in front: any box's sum in four lookups."""
    table = np.zeros((blocks.shape[0] + 1, blocks.shape[1] + 1))
    table[1:, 1:] = blocks.cumsum(axis=0).cumsum(axis=1)
    return table


def _box(table: Blocks, rows: slice, cols: slice) -> float:
    top, bottom, left, right = rows.start, rows.stop, cols.start, cols.stop
    return float(table[bottom, right] - table[top, right] - table[bottom, left] + table[top, left])


def _dilated(blocks: npt.NDArray[np.bool_], margin: int) -> npt.NDArray[np.bool_]:
    """``blocks`` grown by ``margin`` blocks every way (diagonals too)."""
    grown: npt.NDArray[np.bool_] = np.array(blocks, dtype=np.bool_)
    for _ in range(margin):
        padded = np.pad(grown, 1)
        rows = padded[:-2] | padded[1:-1] | padded[2:]
        grown = rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]
    return grown


def _grown(shares: Blocks) -> Blocks:
    """``shares`` grown by one block every way, each block taking its largest neighbour's."""
    padded = np.pad(shares, 1)
    rows = np.maximum(np.maximum(padded[:-2], padded[1:-1]), padded[2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _pixels(blocks: npt.NDArray[np.bool_] | npt.NDArray[np.float32], height: int, width: int) -> torch.Tensor:
    """A per-block array per input pixel (1 x height x width)."""
    pixels = torch.from_numpy(blocks).repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1)  # pyright: ignore[reportUnknownMemberType]: typed in part
    return pixels[None, :height, :width]


def _feathered(shares: Blocks, height: int, width: int) -> torch.Tensor:
    """Per-block shares per input pixel (1 x height x width), each edge between blocks faded over
    BLOCK + 1 pixels (a box average): a block's own share exactly from BLOCK / 2 pixels inside its
    edges with blocks of other shares (1 inside what was grown, 0 beyond the grown blocks)."""
    mask = _pixels(shares.astype(np.float32), height, width)[None]
    radius = BLOCK // 2
    size = 2 * radius + 1
    mask = F.avg_pool2d(F.pad(mask, (0, 0, radius, radius), mode="replicate"), (size, 1), stride=1)
    mask = F.avg_pool2d(F.pad(mask, (radius, radius, 0, 0), mode="replicate"), (1, size), stride=1)
    return mask[0]


def _enlarged(shares: torch.Tensor, scale: int) -> torch.Tensor:
    """Shares per input pixel (1 x h x w) per output pixel: each repeated ``scale`` times each way."""
    _, height, width = shares.shape
    return shares[:, :, None, :, None].expand(1, height, scale, width, scale).reshape(1, height * scale, width * scale)


def _windows(blocks: npt.NDArray[np.bool_], height: int, width: int) -> list[_Window]:
    """Windows covering ``blocks`` (and BLOCK / 2 pixels around them, where the feather spills)
    with CONTEXT pixels more on every side, merged where they overlap: each pixel of the output
    comes from one window, computed with the context the whole frame would give it. Runs of a row
    closer than their contexts are joined first (they would overlap): few windows to merge."""
    merged: list[_Window] = []
    join = 2 * CONTEXT // BLOCK
    for row in np.flatnonzero(blocks.any(axis=1)).tolist():
        columns = np.flatnonzero(blocks[row])
        breaks = np.flatnonzero(np.diff(columns) > join)
        for first, last in zip(columns[np.r_[0, breaks + 1]].tolist(), columns[np.r_[breaks, -1]].tolist()):
            window = _Window(
                max(0, row * BLOCK - CONTEXT),
                min(height, (row + 1) * BLOCK + CONTEXT),
                max(0, first * BLOCK - CONTEXT),
                min(width, (last + 1) * BLOCK + CONTEXT),
            )
            merged = _merged_into(merged, window)
    return merged


def _merged_into(windows: list[_Window], window: _Window) -> list[_Window]:
    """``windows`` (none overlapping another) with ``window`` added, merged with those it overlaps."""
    while True:
        overlapping = [other for other in windows if other.overlaps(window)]
        if not overlapping:
            return [*windows, window]
        for other in overlapping:
            window = window.union(other)
        windows = [other for other in windows if other not in overlapping]


@dataclass
class FrameReuse:
    """The reuse state of one run of consecutive frames (a segment), for each network pass."""

    tile: int = REUSE_TILE
    test: ChangeTest = field(default_factory=ChangeTest)
    passes: list[PassReuse] = field(default_factory=list[PassReuse])
    final: torch.Tensor | None = None  # the last frame's result after every pass and the resize (1 x 3 x H x W)
    unchanged: bool = False  # every frame of the last batch is the frame before it, untouched
    planes: Planes | None = None  # the last batch's output planes (B x ... each)

    def kept_planes(self, frames: int) -> Planes | None:
        """The last frame's output planes for ``frames`` frames when the last batch changed
        nothing (None otherwise): no second colour conversion of the very same pixels."""
        if not self.unchanged or self.planes is None:
            return None
        first, second, third = (np.repeat(plane[-1:], frames, axis=0) for plane in self.planes)
        return first, second, third

    def pass_state(self, index: int, growth: int) -> PassReuse:
        """The state of network pass ``index`` (0 first), whose input is ``growth`` times the frame:
        its tiles are as much larger, so each covers the same part of the picture."""
        while len(self.passes) <= index:
            self.passes.append(PassReuse(tile=self.tile * growth, test=self.test))
        return self.passes[index]

    @property
    def count(self) -> ReuseCount:
        total = ReuseCount()
        for state in self.passes:
            total += state.count
        return total


def work_needed(frames: Iterable[torch.Tensor], scale: int) -> ReuseCount:
    """What reuse would send through the network's first pass for these consecutive frames
    (each 3 x h x w, as the network sees them), decided exactly as a render decides but without
    running the network: for estimates. The first frame counts whole, as a segment's first does."""
    state = PassReuse()
    for frame in frames:
        state._decide(frame, scale)  # pyright: ignore[reportPrivateUsage]: the decision alone, on purpose
    return state.count
