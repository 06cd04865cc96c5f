"""The regret and rolling-revenue figure (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dynpricing.experiment.scoring import PolicyScore

FIGURE_SIZE_IN = (11.0, 4.5)
DPI = 120


def plot_curves(scores: Sequence[PolicyScore], path: Path, title: str) -> None:
    """Cumulative regret and rolling share of oracle revenue per policy, side by side."""
    import matplotlib  # noqa: PLC0415 - optional dependency, loaded only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (regret_axes, share_axes) = plt.subplots(1, 2, figsize=FIGURE_SIZE_IN)
    for s in scores:
        steps = range(1, s.cumulative_regret.size + 1)
        regret_axes.plot(steps, s.cumulative_regret, label=s.name)
        share_axes.plot(steps, s.rolling_oracle_pct, label=s.name)
    regret_axes.set(xlabel="decisions", ylabel="cumulative expected regret", title="regret")
    share_axes.set(xlabel="decisions", ylabel="% of oracle revenue (rolling)", title="revenue")
    share_axes.set_ylim(bottom=max(0.0, min(s.rolling_oracle_pct.min() for s in scores) - 2))
    regret_axes.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
