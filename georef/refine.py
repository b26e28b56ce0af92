"""Sub-pixel refinement of a fitted transform by local phase correlation.

Keypoint matchers localise to a pixel or so (XFeat detects on an 8 px cell
grid). Once a transform is known to that precision, the reference can be
resampled onto the target grid and the remaining offset measured densely:
phase correlation in windows over the image (the AROSICS idea, applied after a
learned matcher). What is correlated is the gradients' orientation with its
angle doubled (orientation correlation, Fitch et al. 2002, as in glacier
feature tracking): an edge keeps its place and its doubled angle where snow
inverts the brightness of fields, and unlike the gradient's magnitude it keeps
which way the edge runs. The window offsets become tie points for a final
robust least-squares fit. The windows are correlated in batches of torch FFTs.
"""

from __future__ import annotations

import functools

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from georef import geometry
from georef.errors import MatchingError
from georef.fitting import MIN_POINTS, fit_transform
from georef.significance import log10_nfa
from georef.options import RefineOptions
from georef.raster import MatchImage

log = logging.getLogger(__name__)

_WINDOW_BATCH = 512


@dataclass
class Refinement:
    """Window tie points of the refinement.

    Attributes:
        matrix: (3, 3) refined target-raster -> chip-raster transform.
        model: its model (the one chosen, where ``auto`` was asked).
        target_px: (M, 2) window centres, target working raster coordinates.
        chip_px: (M, 2) their measured positions in the chip.
        response: (M,) phase-correlation peak strength.
        inliers: (M,) bool, windows the final fit kept.
        tried: textured windows correlated in the last round.
        log_nfa: log10 NFA of the windows agreeing with the fit (see :func:`window_log_nfa`).
        content: where the windows were made smaller to fit a small image, windows of the ground size
            asked for, measured once on the final resampling: (K, 2) centres and (K, 2) their positions in
            the chip; None otherwise.
    """

    matrix: np.ndarray
    model: str
    target_px: np.ndarray
    chip_px: np.ndarray
    response: np.ndarray
    inliers: np.ndarray
    tried: int
    log_nfa: float
    content: tuple[np.ndarray, np.ndarray] | None = None


def _sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 Sobel derivatives along x and along y."""
    return cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 Sobel gradient magnitude: edges keep their place where snow inverts brightness."""
    return cv2.magnitude(*_sobel(image))


def orientation_field(image: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 Sobel gradient with its angle doubled, at the gradient's magnitude.

    (gx + i gy)^2 / |g|: a gradient and its opposite (an edge whose contrast snow inverted) give the
    same vector, and the two channels correlated together match edges by their direction as well.
    """
    gx, gy = _sobel(image)
    magnitude = cv2.magnitude(gx, gy) + 1e-12
    return np.stack([(gx * gx - gy * gy) / magnitude, 2 * gx * gy / magnitude])


def resample_to(chip: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sample ``chip`` at ``matrix`` applied to each pixel of a ``shape`` grid (raster coordinates)."""
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    m = to_index @ matrix @ np.linalg.inv(to_index)
    h, w = shape
    return cv2.warpPerspective(chip, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _window_sums(integral: np.ndarray, window: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sums over the windows whose top-left pixels are (``ys``, ``xs``), from an integral image."""
    return integral[ys + window, xs + window] - integral[ys, xs + window] - integral[ys + window, xs] + integral[ys, xs]


def _window_counts(mask: np.ndarray, window: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Pixels of the bool ``mask`` set in the windows of :func:`_window_sums` (counted in integers: a float
    integral image costs thirty times as much)."""
    return _window_sums(cv2.integral(mask.view(np.uint8), sdepth=cv2.CV_32S), window, ys, xs)


def _window_variance(channels: np.ndarray, window: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Variance, summed over the channels, of the float32 (C, H, W) ``channels`` over the windows of
    :func:`_window_sums`."""
    total = 0.0
    for image in channels:
        sums, squares = cv2.integral2(image, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
        mean = _window_sums(sums, window, ys, xs) / window**2
        total = total + _window_sums(squares, window, ys, xs) / window**2 - mean**2
    return total


def _window_grid(shape: tuple[int, int], window: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(M,) rows and (M,) columns of the top-left pixels of windows on a grid of spacing ``step``."""
    h, w = shape
    return np.mgrid[0:h - window + 1:step, 0:w - window + 1:step].reshape(2, -1)


@functools.lru_cache(maxsize=8)
def _lowpass(size: int, sigma: float, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(size, size // 2 + 1) Gaussian weights over the rfft2 frequencies (cycles per pixel), the
    height of the peak they make alone (irfft2 of the weights at 0), and the (size, size) Hann window."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    weight = torch.exp(-(fx**2 + fy**2) / (2 * sigma**2)).to(device)
    hann = torch.from_numpy(cv2.createHanningWindow((size, size), cv2.CV_32F)).to(device)
    return weight, torch.fft.irfft2(weight, s=(size, size))[0, 0], hann


def parabola_vertex(before: np.ndarray, centre: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Elementwise offset, in samples, from the middle of three equally spaced samples to the top of the
    parabola through them (0 where it has no top)."""
    curvature = before - 2 * centre + after
    return np.where(curvature < 0, 0.5 * (before - after) / np.where(curvature < 0, curvature, -1.0), 0.0)


def _spectra(windows: np.ndarray, hann: torch.Tensor, device: str) -> torch.Tensor:
    """(M, C, n, n // 2 + 1) complex64 spectra of (M, C, n, n) windows of C channels (or of (M, n, n)
    windows, one channel), each less its mean and Hann-tapered."""
    stack = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(device)
    if stack.ndim == 3:
        stack = stack[:, None]
    return torch.fft.rfft2(stack.sub(stack.mean(dim=(-2, -1), keepdim=True)).mul_(hann))


def phase_correlate(a: np.ndarray, b: np.ndarray, lowpass_sigma: float = 0.1,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel shifts between stacks of square windows by low-pass weighted phase correlation.

    Plain phase correlation whitens the spectrum, so its peak is a sharp sinc that
    sub-pixel interpolation (OpenCV's centroid included) pulls towards whole
    pixels. Weighting the whitened spectrum by a Gaussian gives a Gaussian peak
    whose position a three-point fit of its logarithm recovers without that bias,
    and drops the high frequencies where two seasons share mostly noise.

    Args:
        a, b: (M, n, n) float32 windows, or (M, C, n, n) windows of C channels correlated together
            (their cross-power spectra summed).
        lowpass_sigma: width of the Gaussian weight, cycles per pixel.
        device: torch device of the FFTs (the peak is found on the CPU).

    Returns:
        (M, 2) shifts (x, y) such that the content of ``a`` at p is in ``b`` at
        p + shift, and (M,) peak heights (1 for identical content, near 0 for none).
    """
    hann = _lowpass(a.shape[-1], lowpass_sigma, str(device))[2]
    return _correlate_spectra(_spectra(a, hann, device), _spectra(b, hann, device), lowpass_sigma, device)


def _correlate_spectra(a: torch.Tensor, b: torch.Tensor, lowpass_sigma: float,
                       device: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`phase_correlate` of windows given by their :func:`_spectra`."""
    m, n = a.shape[0], a.shape[2]
    weight, unit, _ = _lowpass(n, lowpass_sigma, str(device))
    cross = (a.conj() * b).sum(dim=1)
    # Whitened and weighted with one real factor (a complex division costs twice as much, and a complex
    # abs more than the sum of squares); scaled by unit so that identical windows peak at 1.
    factor = (cross.real.square() + cross.imag.square()).add_(1e-24).rsqrt_().mul_(weight)
    surface = torch.fft.irfft2(cross.mul_(factor), s=(n, n)).div_(unit).cpu().numpy()
    rows = np.arange(m)
    py, px = np.unravel_index(surface.reshape(m, -1).argmax(axis=1), (n, n))
    peak = surface[rows, py, px]

    def log_at(dy: int, dx: int) -> np.ndarray:
        return np.log(np.maximum(surface[rows, (py + dy) % n, (px + dx) % n], 1e-9))

    centre = np.log(np.maximum(peak, 1e-9))
    sub_x = parabola_vertex(log_at(0, -1), centre, log_at(0, 1))
    sub_y = parabola_vertex(log_at(-1, 0), centre, log_at(1, 0))
    # Peaks past the middle of the window wrap around to negative shifts.
    shift_x = np.where(px > n // 2, px - n, px) + sub_x
    shift_y = np.where(py > n // 2, py - n, py) + sub_y
    return np.stack([shift_x, shift_y], axis=1), peak


def _window_views(channels: np.ndarray, window: int) -> np.ndarray:
    """(H - n + 1, W - n + 1, C, n, n) views of every ``window`` x ``window`` window of (C, H, W) ``channels``:
    one fancy index on the first two axes copies a batch of windows out at once."""
    return np.moveaxis(np.lib.stride_tricks.sliding_window_view(channels, (window, window), axis=(1, 2)), 0, 2)


class _TargetWindows:
    """The target's windows on a grid: their variances, and their spectra, each computed once, when first
    asked for (the target stays the same through the refinement's rounds).

    Args:
        channels: (C, H, W) float32 image channels, correlated together.
        window: window side, pixels.
        step: spacing of the windows' grid (:func:`_window_grid`), pixels.
        lowpass_sigma, device: see :func:`phase_correlate`.
    """

    def __init__(self, channels: np.ndarray, window: int, step: int, lowpass_sigma: float, device: str) -> None:
        self.views = _window_views(channels, window)
        self.grid = _window_grid(channels.shape[1:], window, step)
        self.window, self.lowpass_sigma, self.device = window, lowpass_sigma, device
        self.variance = _window_variance(channels, window, *self.grid)
        self.hann = _lowpass(window, lowpass_sigma, str(device))[2]
        self.spectra = torch.empty((len(self.grid[0]), len(channels), window, window // 2 + 1),
                                   dtype=torch.complex64, device=device)
        self.done = np.zeros(len(self.grid[0]), bool)

    def __getitem__(self, index: np.ndarray) -> torch.Tensor:
        """(K, C, n, n // 2 + 1) spectra of the grid's windows ``index`` (K,)."""
        missing = index[~self.done[index]]
        for start in range(0, len(missing), _WINDOW_BATCH):  # batches bound the FFTs' working memory
            part = missing[start:start + _WINDOW_BATCH]
            ys, xs = self.grid[0][part], self.grid[1][part]
            self.spectra[torch.from_numpy(part)] = _spectra(self.views[ys, xs], self.hann, self.device)
        self.done[missing] = True
        return self.spectra[torch.from_numpy(index)]


#: Weakest phase-correlation peak a window's offset is accepted from.
MIN_RESPONSE = 0.05


def measure_windows(
    target: np.ndarray,
    reference: np.ndarray,
    valid: np.ndarray,
    window: int = 64,
    step: int = 32,
    min_response: float = MIN_RESPONSE,
    max_offset: float = 3.0,
    lowpass_sigma: float = 0.1,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Offsets of ``reference`` against ``target`` in windows on a grid.

    Args:
        target, reference: (H, W) float32 images on the same grid.
        valid: (H, W) bool, pixels both images hold.
        window: window side, pixels.
        step: grid spacing, pixels.
        min_response: weakest phase-correlation peak accepted.
        max_offset: largest offset accepted, pixels.
        lowpass_sigma, device: see :func:`phase_correlate`.

    Returns:
        (M, 2) window centres (raster coordinates), (M, 2) offsets such that
        target content at c is found in reference at c + offset, (M,) responses,
        and the number of textured windows tried (before the response and offset checks).
    """
    return _measure_gradients(_TargetWindows(orientation_field(target), window, step, lowpass_sigma, device),
                              orientation_field(reference), valid, min_response, max_offset)


def _measure_gradients(target: _TargetWindows, gr: np.ndarray, valid: np.ndarray, min_response: float,
                       max_offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`measure_windows` on (C, H, W) orientation fields (:func:`orientation_field`), the target's given
    by its windows."""
    ys, xs, window = *target.grid, target.window
    # Window sums from integral images: the texture and validity checks cost O(1) per window.
    invalid = _window_counts(~valid, window, ys, xs)
    variance = np.minimum(target.variance, _window_variance(gr, window, ys, xs))
    usable = np.flatnonzero((invalid < 0.5) & (variance >= 1e-6))
    ys, xs = ys[usable], xs[usable]
    empty = np.zeros((0, 2))
    if len(ys) == 0:
        return empty, empty, np.zeros(0), 0
    offsets, responses = np.zeros((len(ys), 2)), np.zeros(len(ys))
    reference_windows = _window_views(gr, window)
    # Batches bound the FFTs' memory where a large image holds thousands of windows.
    for start in range(0, len(ys), _WINDOW_BATCH):
        part = slice(start, start + _WINDOW_BATCH)
        offsets[part], responses[part] = _correlate_spectra(
            target[usable[part]], _spectra(reference_windows[ys[part], xs[part]], target.hann, target.device),
            target.lowpass_sigma, target.device)
    keep = (responses >= min_response) & (np.hypot(*offsets.T) <= max_offset)
    centres = np.stack([xs, ys], axis=1).astype(np.float64) + window / 2
    return centres[keep], offsets[keep], responses[keep], len(ys)


#: Fewest windows of the ground size whose median distance stands for the content's disagreement.
MIN_CONTENT_WINDOWS = 5

#: Neighbouring windows overlap by half on each axis: four of them hold about one window of independent pixels.
OVERLAP = 4


def window_log_nfa(tried: int, agreeing: int, threshold_px: float, window: int, model: str) -> float:
    """log10 NFA of windows agreeing with a fit: a window of unrelated content peaks anywhere in its
    window x window offsets, so it lands within ``threshold_px`` of the fit by chance with probability
    pi threshold^2 / window^2 (see :mod:`georef.significance`)."""
    return log10_nfa(tried // OVERLAP, agreeing // OVERLAP, np.pi * threshold_px**2 / window**2,
                     MIN_POINTS.get(model, MIN_POINTS["affine"]))


def refine(target: MatchImage, chip: MatchImage, matrix: np.ndarray, model: str,
           options: RefineOptions = RefineOptions(), device: str = "cpu",
           content_window: int | None = None) -> Refinement | None:
    """Refine a target-raster -> chip-raster transform to sub-pixel precision.

    Each round resamples the chip onto the target grid through the transform,
    measures the offsets of windows on a grid, and fits the model to them; later
    rounds measure on a resampling closer to the truth, where the windows agree
    better. It stops when a round moves the image corners less than
    ``options.converged_px``, or no less than the round before (the windows'
    noise, not their offset, then sets the move).

    Args:
        target: the target image (pixels (H, W) float32, valid (H, W) bool).
        chip: the reference chip.
        matrix: (3, 3) transform to refine, accurate to a few pixels.
        model: transform model of the window fits (``auto`` chooses in each round).
        options: window size, rounds, thresholds and the spectral weight (see
            :func:`phase_correlate`; its default, 0.1 cycles/px, was chosen on the
            s2-seasons benchmark, see docs/benchmarks.md).
        device: torch device of the correlations' FFTs.
        content_window: the window side the ground size asks for, where ``options.window`` was made
            smaller to fit the image: windows of this side are measured once more on the final
            resampling (:attr:`Refinement.content`).

    Returns:
        The refinement, or None where too few windows hold texture or agree on a transform.
    """
    result, previous_change = None, np.inf
    target_field = orientation_field(target.pixels)
    target_windows = _TargetWindows(target_field, options.window, options.window // 2, options.lowpass_sigma, device)
    chip_valid = chip.valid.astype(np.float32)

    def measure(windows: _TargetWindows, through: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``windows`` on the chip resampled through ``through``: centres, chip positions, responses, tried."""
        warped = resample_to(chip.pixels, through, target.shape)
        warped_valid = resample_to(chip_valid, through, target.shape) > 0.99
        centres, offsets, responses, tried = _measure_gradients(
            windows, orientation_field(warped), target.valid & warped_valid, MIN_RESPONSE, options.max_offset_px)
        return centres, geometry.apply(through, centres + offsets), responses, tried

    for _ in range(options.iterations):
        centres, chip_px, responses, tried = measure(target_windows, matrix)
        if len(centres) < options.min_windows:
            log.info("refinement skipped: %d textured windows < %d", len(centres), options.min_windows)
            return result
        try:
            fit = fit_transform(centres, chip_px, model, options.threshold_px)
        except MatchingError:  # the windows agree on no transform: they confirm nothing
            log.info("refinement stopped: no %s model fits its %d windows", model, len(centres))
            return result
        change = geometry.mean_corner_distance(fit.matrix, matrix, *target.shape[::-1])
        matrix = fit.matrix
        result = Refinement(matrix, fit.model, centres, chip_px, responses, fit.inliers, tried,
                            window_log_nfa(tried, int(fit.inliers.sum()), options.threshold_px, options.window,
                                           fit.model))
        log.info("refinement: %d windows, %d inliers, moved %.3f px", len(centres), fit.inliers.sum(), change)
        if change < options.converged_px or change >= previous_change:
            break
        previous_change = change
    if result is not None and content_window is not None and options.window < content_window <= min(target.shape):
        ground = _TargetWindows(target_field, content_window, content_window // 2, options.lowpass_sigma, device)
        centres, chip_px, _, _ = measure(ground, result.matrix)
        if len(centres) >= MIN_CONTENT_WINDOWS:
            result.content = centres, chip_px
    return result

