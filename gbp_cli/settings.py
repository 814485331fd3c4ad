"""What the user chose for drawing and smoothing, with each default written once.

Plain dataclasses with no heavy imports, so the command line can show the defaults without
loading numpy, PIL or matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rendering:
    """How maps are drawn: `--clip`, `--cmap`, `--alpha`, `--max-size`, and the colour
    rendering's contrast."""

    clip: float = 99.0  # percentile of |map| drawn at full strength
    cmap: str = "inferno"  # matplotlib colormap for heatmap and overlay
    alpha: float = 0.5  # overlay strength where the map is strongest
    contrast: float = 0.1  # `color`: how far one standard deviation moves from mid-grey
    # Pictures' longer side, in pixels (0: the photo's own size). A map holds the model's
    # 224×224 values; a phone photo's 12 megapixels would only make it slower and bigger.
    max_size: int = 1024

    def describe(self) -> str:
        return (
            f"clip={self.clip:g} cmap={self.cmap} alpha={self.alpha:g} contrast={self.contrast:g}"
            f" max-size={self.max_size}"
        )


@dataclass(frozen=True)
class Smoothing:
    """SmoothGrad: `samples` noisy copies, noise σ = `noise` × each image's input range."""

    samples: int = 25
    noise: float = 0.15
    seed: int = 0

    def describe(self) -> str:
        return f"SmoothGrad n={self.samples} sigma={self.noise:g} seed={self.seed}"


DEFAULT_RENDERING = Rendering()
