"""Figures, saved as PNG (headless: the Agg backend unless a notebook backend is active)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..paper.reported import METHOD_LABELS, baseline_label  # noqa: E402
from ..paths import atomic_output  # noqa: E402
from ..training.train import History  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return Path(path)


def psnr_curves(histories: dict[str, History], path: str | Path, title: str = "Validation PSNR") -> Path:
    """Validation PSNR (against clean patches) and training loss against steps, one line per run."""
    fig, (ax_psnr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for label, h in histories.items():
        ax_psnr.plot(h.val_step, h.val_psnr, marker=".", label=label)
        ax_loss.plot(h.step, h.train_loss, label=label)
    inputs = sorted({h.val_psnr_input for h in histories.values() if h.val_psnr_input is not None})
    for i, value in enumerate(inputs):
        ax_psnr.axhline(value, color="grey", ls=":", lw=1, label=None if i else "noisy input")
    ax_psnr.set(xlabel="step", ylabel="PSNR (dB)", title=title)
    # a noisy target puts a floor under the loss (the target noise variance): compare shapes, not levels
    ax_loss.set(xlabel="step", ylabel="training loss", title="Training loss (against each run's own target)")
    for ax in (ax_psnr, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    return _save(fig, path)


def image_grid(rows: list[list[tuple[str, torch.Tensor]]], path: str | Path, scale: float = 3.0) -> Path:
    """A grid of titled 3 x H x W images in [0, 1] (clipped for display)."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, (title, image) in enumerate(row):
            axes[r][c].imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            axes[r][c].set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def psnr_bars(values: dict[str, float], path: str | Path, title: str, reference: dict[str, float] | None = None) -> Path:
    """One bar per run (ours); paper numbers, when given, as black ticks."""
    fig, ax = plt.subplots(figsize=(1.6 * len(values) + 2, 4))
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color="tab:blue", label="this run")
    ax.bar_label(bars, fmt="%.2f")
    if reference:
        xs = [i for i, n in enumerate(names) if n in reference]
        ax.scatter(xs, [reference[names[i]] for i in xs], marker="_", s=900, color="k", label="paper", zorder=3)
    low = min(list(values.values()) + list((reference or {}).values()))
    ax.set(ylabel="PSNR (dB)", title=title, ylim=(low - 2, None))
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def table1_figure(table, path: str | Path) -> Path:
    """Table 1 at a glance: one panel per noise type, one group of bars per test set (noisy input,
    classical baseline, clean targets, noisy targets), the paper's numbers as black ticks."""

    noises = table.noises()
    fig, axes = plt.subplots(1, max(1, len(noises)), figsize=(5.2 * max(1, len(noises)), 4.2), squeeze=False)
    colors = {"input": "0.7", "baseline": "tab:green", "clean": "tab:orange", "n2n": "tab:blue"}
    width = 0.2
    for ax, noise in zip(axes[0], noises):
        sets = table.test_sets(noise)
        for j, method in enumerate(("input", "baseline", "clean", "n2n")):
            xs = [i + (j - 1.5) * width for i in range(len(sets))]
            ours = [table.value(noise, s, method) for s in sets]
            label = baseline_label(noise) if method == "baseline" else METHOD_LABELS[method]
            ax.bar([x for x, v in zip(xs, ours) if v is not None], [v for v in ours if v is not None], width,
                   color=colors[method], label=label)
            paper = [(x, p) for x, s in zip(xs, sets) if (p := table.paper(noise, s, method)) is not None]
            if paper:
                ax.scatter(*zip(*paper), marker="_", s=250, color="k", zorder=3,
                           label="paper" if method == "n2n" else None)
        values = [v for s in sets for m in ("baseline", "clean", "n2n") if (v := table.value(noise, s, m)) is not None]
        low = min(values + [table.value(noise, s, "input") or 99 for s in sets]) if values else 0
        ax.set(title=f"{noise.capitalize()} noise", xticks=range(len(sets)), ylabel="PSNR (dB)",
               ylim=(max(0.0, low - 2), None))
        ax.set_xticklabels(sets)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def pretrained_curve(history: History, pixels_per_step: int, path: str | Path, title: str) -> Path:
    """Validation PSNR against the pixels a long run has seen (the shipped weights' model card)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    gpix = [s * pixels_per_step / 1e9 for s in history.val_step]
    ax.plot(gpix, history.val_psnr, marker=".", label="moving average of the weights")
    if history.val_psnr_input is not None:
        ax.axhline(history.val_psnr_input, color="grey", ls=":", lw=1, label="noisy input")
    ax.set(xlabel="Gpix seen (crops x pixels)", ylabel="PSNR (dB)", title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def demo_figure(panels: list[tuple[str, torch.Tensor]], path: str | Path | None = None) -> None:
    """Titled 3 x H x W images side by side, saved to ``path`` when given; shown in a notebook,
    closed elsewhere (a headless run keeps no figure open)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(13 / 3 * len(panels), 4.6), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels):
        ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if path:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    if "inline" in matplotlib.get_backend().lower():
        plt.show()
    else:
        plt.close(fig)


def claims_figure(studies: dict[str, dict[str, float]], paper: dict[str, dict[str, float]], path: str | Path) -> Path:
    """The studies of the claims table (``claims.write_claims``): one panel per study, one bar per
    method (noisy input, each loss on noisy targets, clean targets), the paper's figures as ticks."""
    order = ("input", "mean4", "bm3d", "zeroshot", "l2", "n2n", "finetuned", "nb2nb", "l1", "l0", "clean", "case1",
             "case2", "case3")
    keys = list(studies) or ["(none yet)"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys) + 1, 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        psnr = studies.get(key, {})
        methods = [m for m in order if m in psnr]
        bars = ax.bar(methods, [psnr[m] for m in methods], color=["0.7" if m == "input" else "tab:orange"
                                                                  if m == "clean" else "tab:blue" for m in methods])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ref = paper.get(key, {})
        xs = [i for i, m in enumerate(methods) if m in ref]
        if xs:
            ax.scatter(xs, [ref[methods[i]] for i in xs], marker="_", s=500, color="k", label="paper", zorder=3)
            ax.legend(loc="upper left", fontsize=8)
        ax.set(title=key, ylabel="PSNR (dB)" if ax is axes[0][0] else None)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
