"""The paper's Table 1, regenerated: every noise type x test set x method, ours next to the paper's.

Methods: the noisy input, the classical baseline (BM3D / BM3D + Anscombe; see ``baselines``), the
U-Net trained on clean targets and the U-Net trained on noisy targets (Noise2Noise). Every number
comes from ``evaluation.evaluate`` with the paper's protocol on the same seeded noisy images.
``measure`` fills a ``Table1``; ``Table1.write`` saves ``table1.md`` and ``table1.csv``.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from . import baselines
from .. import paths
from ..config import NOISE_KINDS, PRECISION_NAMES, Profile
from ..paper.noise import NOISE_TYPES
from ..paper.reported import METHOD_LABELS, METHODS, TABLE1, TEST_SET_LABELS, baseline_label
from ..training.runtime import Runtime


@dataclass
class Table1:
    """Measured cells, ``(noise, test set, method) -> {"psnr", "images", "repeats"}``, and why a
    cell is missing, ``(noise, test set, method) -> reason``."""
    cells: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)
    comparable: bool = True
    notes: list = field(default_factory=list)
    levels: dict = field(default_factory=dict)  # noise -> the test level measured (default: Table 1's)

    def add(self, noise: str, test_set: str, method: str, psnr: float, images: int, repeats: int = 1,
            available: int | None = None) -> None:
        """One measured cell: the mean PSNR over ``images`` images (of ``available`` in the set)."""
        self.cells[(noise, test_set, method)] = {"psnr": float(psnr), "images": int(images), "repeats": int(repeats),
                                                 "available": int(available or images)}

    def value(self, noise: str, test_set: str, method: str) -> float | None:
        if test_set == "average":
            values = [self.value(noise, s, method) for s in ("kodak", "bsd300", "set14")]
            return None if None in values else sum(values) / len(values)
        cell = self.cells.get((noise, test_set, method))
        return None if cell is None else cell["psnr"]

    def level(self, noise: str) -> float:
        return self.levels.get(noise, NOISE_TYPES[noise].test_level)

    def noises(self) -> list[str]:
        return [k for k in NOISE_KINDS if any(key[0] == k for key in self.cells)]

    def test_sets(self, noise: str) -> list[str]:
        found = {key[1] for key in self.cells if key[0] == noise}
        order = ["kodak", "bsd300", "set14"]
        sets = [s for s in order if s in found] + sorted(found - set(order))
        return sets + (["average"] if all(s in found for s in order) else [])

    def paper(self, noise: str, test_set: str, method: str) -> float | None:
        if not self.comparable or method == "input" or self.level(noise) != NOISE_TYPES[noise].test_level:
            return None
        return TABLE1.get(noise, {}).get(test_set, {}).get(method)

    def rows(self) -> list[dict]:
        """One row per (noise, test set, method), in the long format of the CSV."""
        rows = []
        for noise in self.noises():
            for test_set in self.test_sets(noise):
                for method in METHODS:
                    ours, paper = self.value(noise, test_set, method), self.paper(noise, test_set, method)
                    cell = self.cells.get((noise, test_set, method), {})
                    rows.append({
                        "noise": noise, "test_set": test_set, "method": method,
                        "method_name": baseline_label(noise) if method == "baseline" else METHOD_LABELS[method],
                        "images": cell.get("images", ""), "of_images": cell.get("available", ""),
                        "repeats": cell.get("repeats", ""),
                        "ours_db": "" if ours is None else round(ours, 2),
                        "paper_db": "" if paper is None else paper,
                        "difference_db": "" if ours is None or paper is None else round(ours - paper, 2),
                        "note": self.missing.get((noise, test_set, method), ""),
                    })
        return rows

    def to_csv(self) -> str:
        buffer = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["noise"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_markdown(self, title: str = "Table 1, reproduced") -> str:
        out = [f"# {title}", ""]
        out += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        for noise in self.noises():
            kind = NOISE_TYPES[noise]
            out += [f"## {kind.title} noise, {kind.symbol} = {self.level(noise):g}", "",
                    f"| test set | noisy input | {baseline_label(noise)}: ours | paper | clean targets: ours | paper "
                    f"| N2N: ours | paper | N2N - clean |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for test_set in self.test_sets(noise):
                def fmt(method, paper=False):
                    v = self.paper(noise, test_set, method) if paper else self.value(noise, test_set, method)
                    if v is not None:
                        return f"{v:.2f}" + ("" if paper else self._subset_note(noise, test_set, method))
                    if paper:
                        return "n/a" if not self.comparable else "-"
                    return self.missing.get((noise, test_set, method), "-")
                n2n, clean = self.value(noise, test_set, "n2n"), self.value(noise, test_set, "clean")
                gap = f"{n2n - clean:+.2f}" if n2n is not None and clean is not None else "-"
                out.append(f"| {_set_label(self, noise, test_set)} | {fmt('input')} | {fmt('baseline')} | "
                           f"{fmt('baseline', True)} | {fmt('clean')} | {fmt('clean', True)} | {fmt('n2n')} | "
                           f"{fmt('n2n', True)} | {gap} |")
            out.append("")
        return "\n".join(out)

    def _subset_note(self, noise: str, test_set: str, method: str) -> str:
        """' (first n images)' when a cell covers fewer images than the row's other methods."""
        cell, row = self.cells.get((noise, test_set, method)), self.cells.get((noise, test_set, "input"))
        if cell is None or row is None or cell["images"] >= row["images"]:
            return ""
        return f" (first {cell['images']} image{'s' if cell['images'] > 1 else ''})"

    def check(self, min_gain_db: dict[str, float], max_gap_db: float | dict[str, float]) -> list[str]:
        """The failed checks of the paper's claim, one line each (empty: all hold): for every noise
        and test set, noisy targets within ``max_gap_db`` (one number, or one per noise) of clean
        targets (either way), and both at least ``min_gain_db[noise]`` above the noisy input."""
        problems = []
        for noise in self.noises():
            for test_set in (s for s in self.test_sets(noise) if s != "average"):
                n2n, clean, noisy = (self.value(noise, test_set, m) for m in ("n2n", "clean", "input"))
                where = f"{noise}, {test_set}"
                if n2n is None or clean is None:
                    problems.append(f"{where}: missing {'noisy' if n2n is None else 'clean'}-target result")
                    continue
                limit = max_gap_db[noise] if isinstance(max_gap_db, dict) else max_gap_db
                if abs(n2n - clean) > limit:
                    problems.append(f"{where}: N2N {n2n:.2f} dB vs clean targets {clean:.2f} dB, "
                                    f"{n2n - clean:+.2f} dB apart (limit {limit} dB)")
                gain = min_gain_db.get(noise, 0.0)
                for label, value in (("N2N", n2n), ("clean targets", clean)):
                    if value < noisy + gain:
                        problems.append(f"{where}: {label} {value:.2f} dB beats the noisy input ({noisy:.2f} dB) "
                                        f"by less than {gain} dB")
        return problems

    def write(self, directory: str | Path, stem: str = "table1") -> dict[str, Path]:
        """Write ``<stem>.md`` and ``<stem>.csv`` (atomically) and return their paths; its figure is
        ``plots.table1_figure``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return {suffix: paths.atomic_write_text(directory / f"{stem}.{suffix}", text)
                for suffix, text in (("md", self.to_markdown()), ("csv", self.to_csv()))}


def _set_label(table: Table1, noise: str, test_set: str) -> str:
    label = TEST_SET_LABELS.get(test_set, test_set)
    cell = table.cells.get((noise, test_set, "input"))
    if cell is None:
        return label
    count = str(cell["images"]) if cell["available"] == cell["images"] else f"first {cell['images']} of {cell['available']}"
    return f"{label} ({count}" + (f" x {cell['repeats']})" if cell["repeats"] > 1 else ")")


def measure(models: dict, profile: Profile, rt: Runtime, seed: int = 0, data_dir: str | None = None,
            baseline_sets: tuple[str, ...] | None = ("kodak",), run_baselines: bool = True,
            test_sets: tuple[str, ...] | None = None, baseline_limit: int | None = None) -> Table1:
    """Evaluate ``models`` (``{(noise, "noisy" | "clean"): module}``) and the baselines on every
    available test set (``test_sets``: names, None for all) and return the Table1.

    ``baseline_sets`` limits the slow classical baselines to some test sets (None: all of them), and
    ``baseline_limit`` to the first images of each. The networks run in the runtime ``rt``, whose number
    format the table's notes state."""
    from .protocol import data_sources, evaluate_run

    sources = data_sources(data_dir)
    table = Table1(comparable=sources.comparable)
    if not sources.comparable:
        what = ("scikit-image's embedded photographs (offline default)" if sources.origin == "embedded" else
                "test sets that are not the paper's (recognised by their pixels, not their folder names)")
        table.notes.append(f"Measured on {what}: NOT comparable with the paper. Set N2N_DATA_DIR to a folder with "
                           f"the paper's kodak/, bsd300/ and set14/.")
    else:
        table.notes.append("Ours: the paper's U-Net for every noise type. The paper's Gaussian columns come from "
                           "RED30; its released U-Net reaches 32.38 (clean) / 32.39 (noisy targets) on Kodak.")
    noises = sorted({noise for noise, _ in models}, key=NOISE_KINDS.index)
    table.notes.append(f"Profile {profile.name}: {_budget_note(profile, rt.precision, noises)}")
    used = set()
    for noise in noises:
        table.levels[noise] = profile.noise_config(noise).level
        for target in ("clean", "noisy"):
            model = models.get((noise, target))
            if model is None:
                continue
            method = "n2n" if target == "noisy" else "clean"
            print(f"{noise}, {METHOD_LABELS[method]}:")
            for name, ev in evaluate_run(model, profile, seed=seed, sources=sources, rt=rt, noise=noise,
                                         test_sets=test_sets).items():
                used.add(ev.precision)
                available = ev.extra.get("available")
                table.add(noise, name, method, ev.psnr, len(ev.names), ev.repeats, available)
                table.add(noise, name, "input", ev.psnr_input, len(ev.names), ev.repeats, available)
        _measure_baseline(table, noise, profile, seed, sources, baseline_sets, run_baselines, baseline_limit)
    if used:
        table.notes.append("Networks evaluated in " + " and ".join(
            PRECISION_NAMES[p] for p in sorted(used)) + ".")
    if (baseline_sets is not None or baseline_limit) and run_baselines and baselines.available():
        where = ", ".join(TEST_SET_LABELS.get(s, s) for s in baseline_sets) if baseline_sets is not None else "every set"
        first = f" (first {baseline_limit} images)" if baseline_limit else ""
        table.notes.append(f"The {profile.name} profile runs BM3D on {where}{first} only: it costs tens of seconds "
                           f"per Kodak image on a CPU. `python -m n2n_core eval --baseline bm3d` measures whole sets.")
    return table


def _budget_note(profile: Profile, precision: str, noises: list[str]) -> str:
    """The U-Nets' budgets in ``precision`` (resolved: the budgets of the machine that trains)."""
    budgets = []
    for kind in noises:
        cfg = profile.train_config("unet", kind, precision)
        budget = f"{cfg.max_seconds:g} s" if cfg.max_seconds else f"{cfg.max_steps} steps"
        budgets.append(f"{kind} {budget} of {cfg.batch_size} crops (lr {cfg.lr:g})")
    gaps = ", ".join(f"{kind} {profile.checks.max_table_gap_db:g} dB" for kind in noises)
    return (f"U-Nets trained in {PRECISION_NAMES[precision]} for {', '.join(budgets)}, crops of "
            f"{profile.train.crop}x{profile.train.crop}; the paper trains 300k-500k steps of 4 crops of 256x256. "
            f"The notebook's check allows noisy and clean targets to differ by at most: {gaps}.")


def _measure_baseline(table, noise, profile, seed, sources, baseline_sets, run_baselines, limit) -> None:
    from .protocol import evaluate_run, noise_settings

    sets = [s for (n, s, m) in table.cells if n == noise and m == "input"]
    name = baselines.baseline_name(noise)
    if name is None:
        for s in sets:
            table.missing[(noise, s, "baseline")] = "not run"
        return
    if not run_baselines or not baselines.available():
        reason = "not installed" if run_baselines else "skipped"
        for s in sets:
            table.missing[(noise, s, "baseline")] = reason
        return
    wanted = tuple(s for s in sets if baseline_sets is None or s in baseline_sets)
    for s in sets:
        if s not in wanted:
            table.missing[(noise, s, "baseline")] = "not run"
    if not wanted:
        return
    print(f"{noise}, {name}:")
    denoiser = baselines.BM3DBaseline(noise_settings(profile, noise), paths.bm3d_cache_dir())
    for set_name, ev in evaluate_run(denoiser, profile, seed=seed, sources=sources, noise=noise,
                                     test_sets=wanted, limit_override=limit).items():
        table.add(noise, set_name, "baseline", ev.psnr, len(ev.names), ev.repeats, ev.extra.get("available"))
    print(f"{name}: {denoiser.hits} cached, {denoiser.misses} computed")
