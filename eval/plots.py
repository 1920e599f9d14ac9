"""Labelled scatter plots for benchmark reports (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path


def labelled_scatter(points: list[tuple[float, float, str]], path: Path, *, xlabel: str, ylabel: str,
                     title: str, log_x: bool = True) -> None:
    """One labelled point per (x, y, label), saved to `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for x, y, label in points:
        ax.scatter(x, y)
        ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def line_plot(series: dict[str, tuple[list[float], list[float]]], path: Path, *, xlabel: str, ylabel: str,
              title: str, hline: float | None = None) -> None:
    """One line per name -> (xs, ys), saved to `path`; optional horizontal reference line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    if hline is not None:
        ax.axhline(hline, color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grouped_bars(groups: list[str], series: dict[str, list[float]], path: Path, *, ylabel: str, title: str,
                 hline: float | None = None, ylim: tuple[float, float] | None = None) -> None:
    """One group of bars per name in `groups`, one bar per series (name -> a value per group)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    if hline is not None:
        ax.axhline(hline, color="grey", linewidth=1, linestyle="--")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xticks(np.arange(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=min(len(series), 3))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stacked_bars(bars: list[str], parts: list[str], values: list[list[float]], path: Path, *, xlabel: str,
                 title: str) -> None:
    """One horizontal bar per name in `bars`, stacked from `parts` (values[bar][part])."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * len(bars)))
    left = [0.0] * len(bars)
    for j, part in enumerate(parts):
        widths = [row[j] for row in values]
        ax.barh(bars, widths, left=left, label=part)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.1 / len(bars)), ncol=len(parts))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
