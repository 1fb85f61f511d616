"""The paper's claims beyond Table 1 (notebooks 07, 08 and 10), single captures (notebook 09), real
microscope noise (notebook 11), and the claims table.

A study (``studies.methods.run_study``) trains the paper's U-Net on one noise in several ways, with the
same budget, seed and input noise: on noisy targets under each loss (``l2``, ``l1``, ``l0``; ``n2n``
names noisy targets with L2 where the loss is not the point) and on clean targets (``clean``); it
measures each on the main test set (Kodak) with the paper's protocol and records the PSNRs in
results.json under "studies". ``write_claims`` turns what results.json holds (Table 1's cells and
the studies) into one row per claim of the paper: the paper's figures, ours, and whether the claim
holds by the rule the row states (reports/claims.md, claims.csv, claims.png).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..config import Profile
from ..paper.reported import BROWN_GAP_DB, NB2NB_PUBLISHED, OTHER_EXPERIMENTS, TABLE1
from ..paths import atomic_write_text, report_path

METHOD_NAMES = {"input": "noisy input", "n2n": "noisy targets (L2)", "l2": "noisy targets, L2",
                "l1": "noisy targets, L1", "l0": "noisy targets, annealed L0", "clean": "clean targets",
                "nb2nb": "single captures (Neighbor2Neighbor)"}
# the rules a claim is judged by, in dB (the acceptance): text, impulse, brown noise
TEXT_L1_OVER_L2, TEXT_L1_TO_CLEAN = 3.0, 0.5
IMPULSE_L0_OVER_L1, IMPULSE_L0_OVER_L2, IMPULSE_L0_TO_CLEAN = 3.0, 8.0, 1.0
BROWN_N2N_TO_CLEAN = 0.3
SINGLE_OVER_INPUT, SINGLE_TO_N2N = 8.0, 0.6  # Neighbor2Neighbor, notebook 09
REAL_N2N_TO_CLEAN = 0.3  # real microscope noise, notebook 11


def target_and_loss(method: str) -> tuple[str, str]:
    """The target (noisy or clean) and the loss of a study's method (module docstring)."""
    if method not in METHOD_NAMES or method == "input":
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(m for m in METHOD_NAMES if m != 'input')}")
    if method in ("clean", "nb2nb"):
        return method, "l2"
    return "noisy", "l2" if method == "n2n" else method



# ------------------------------------------------------------------------------------ claims
def _fmt(psnr: dict, methods: tuple[str, ...]) -> str:
    return ", ".join(f"{m} {psnr[m]:.2f}" for m in methods if m in psnr)


def _table1_claim(data: dict, noise: str, gap: float) -> dict:
    cells = {(r["test_set"], r["method"]): r["ours_db"] for r in data.get("table1", []) if r["noise"] == noise}
    sets = [s for s in ("kodak", "bsd300", "set14") if isinstance(cells.get((s, "n2n")), (int, float))
            and isinstance(cells.get((s, "clean")), (int, float))]
    paper = TABLE1[noise]["kodak"]
    row = {"claim": f"Table 1, {noise}: noisy targets match clean targets", "test_set": "kodak",
           "paper": f"Kodak: N2N {paper['n2n']:.2f}, clean {paper['clean']:.2f}",
           "rule": f"abs(N2N - clean) <= {gap:g} dB on every test set measured"}
    if not sets:
        return {**row, "ours": "not measured", "holds": "not measured"}
    gaps = {s: cells[(s, "n2n")] - cells[(s, "clean")] for s in sets}
    ours = "; ".join(f"{s}: N2N {cells[(s, 'n2n')]:.2f}, clean {cells[(s, 'clean')]:.2f}" for s in sets)
    return {**row, "test_set": ", ".join(sets), "ours": ours,
            "holds": "yes" if all(abs(g) <= gap for g in gaps.values()) else "no"}


def _study_claim(data: dict, key: str, claim: str, rule: str, judge, methods: tuple[str, ...],
                 paper_text: str = "") -> dict:
    study = data.get("studies", {}).get(key)
    paper = OTHER_EXPERIMENTS.get(key)  # (brown noise, capture budget: a sentence, no figures)
    row = {"claim": claim, "rule": rule, "paper": _fmt(paper, ("input",) + methods) if paper else paper_text}
    if study is None or not all(m in study["psnr"] for m in methods):
        return {**row, "test_set": "", "ours": "not measured", "holds": "not measured"}
    psnr = study["psnr"]
    return {**row, "test_set": f"{study['test_set']} ({study['images']})", "ours": _fmt(psnr, ("input",) + methods),
            "holds": "yes" if judge(psnr) else "no"}


def claim_rows(data: dict, table_gap_db: float = 0.3) -> list[dict]:
    """One row per claim of the paper, from results.json's content ``data``."""
    rows = [_table1_claim(data, noise, table_gap_db) for noise in TABLE1]
    rows.append(_study_claim(
        data, "text", "Text overlays: L1 learns the median, the clean image; L2 the mean",
        f"L1 >= L2 + {TEXT_L1_OVER_L2:g} dB and L1 within {TEXT_L1_TO_CLEAN:g} dB of clean targets",
        lambda p: p["l1"] >= p["l2"] + TEXT_L1_OVER_L2 and p["clean"] - p["l1"] <= TEXT_L1_TO_CLEAN,
        ("l2", "l1", "clean")))
    rows.append(_study_claim(
        data, "impulse", "Random-valued impulse noise (70%): the annealed L0 learns the mode",
        f"L0 >= L1 + {IMPULSE_L0_OVER_L1:g} dB, >= L2 + {IMPULSE_L0_OVER_L2:g} dB, within "
        f"{IMPULSE_L0_TO_CLEAN:g} dB of clean targets",
        lambda p: (p["l0"] >= p["l1"] + IMPULSE_L0_OVER_L1 and p["l0"] >= p["l2"] + IMPULSE_L0_OVER_L2
                   and p["clean"] - p["l0"] <= IMPULSE_L0_TO_CLEAN), ("l2", "l1", "l0", "clean")))
    brown = sorted((k for k in data.get("studies", {}) if k.startswith("brown")),
                   key=lambda k: float(k[len("brown"):])) or ["brown"]
    for key in brown:
        width = key[len("brown"):] or "?"
        rows.append(_study_claim(
            data, key, f"Brown Gaussian noise (blur width {width} px): N2N ends near clean targets",
            f"abs(N2N - clean) <= {BROWN_N2N_TO_CLEAN:g} dB",
            lambda p: abs(p["n2n"] - p["clean"]) <= BROWN_N2N_TO_CLEAN, ("n2n", "clean"),
            f"N2N within about {BROWN_GAP_DB:g} dB of clean"))
    capture = data.get("studies", {}).get("capture", {})
    cases = "; ".join(c["label"] for c in capture.get("cases", {}).values())
    rows.append(_study_claim(
        data, "capture", f"Capture budget of {capture.get('budget', 'N')} noisy captures: noisy pairs beat targets "
                         f"averaged from the same captures, more scenes beat more captures ({cases or 'not run'})",
        "case 1 < case 2 < case 3 (the paper's order)", lambda p: p["case1"] < p["case2"] < p["case3"],
        ("case1", "case2", "case3"), "case 1 < case 2 < case 3, by several tenths of a dB (figure only)"))
    for kind in ("gaussian", "poisson"):
        published = NB2NB_PUBLISHED.get(kind)
        rows.append(_study_claim(
            data, f"single_{kind}", f"Single captures ({kind}): Neighbor2Neighbor comes near Noise2Noise pairs",
            f"Nb2Nb >= input + {SINGLE_OVER_INPUT:g} dB and within {SINGLE_TO_N2N:g} dB of N2N at the same steps",
            lambda p: p["nb2nb"] >= p["input"] + SINGLE_OVER_INPUT and p["n2n"] - p["nb2nb"] <= SINGLE_TO_N2N,
            ("n2n", "nb2nb", "clean"),
            f"Nb2Nb paper, Kodak: {_fmt(published, ('nb2nb', 'n2n', 'clean'))}" if published else "not published"))
    real = data.get("studies", {}).get("realnoise", {})
    rows.append(_study_claim(
        data, "realnoise", "Real microscope noise (FMD confocal" + ("" if real.get("real_data", True) else
                                                                    ", simulated stand-in") +
        f"): Noise2Noise on real captures within {REAL_N2N_TO_CLEAN:g} dB of the clean-target U-Net",
        f"abs(N2N - clean) <= {REAL_N2N_TO_CLEAN:g} dB", lambda p: abs(p["n2n"] - p["clean"]) <= REAL_N2N_TO_CLEAN,
        ("n2n", "clean"), "no figure (the paper's real-noise tests are on other data)"))
    return rows


def write_claims(profile: Profile, data: dict) -> list[dict]:
    """reports/claims.md, claims.csv and claims.png from ``data``, the content of results.json
    (``experiment.read_results``); returns the rows."""
    from .plots import claims_figure

    rows = claim_rows(data, profile.checks.max_table_gap_db)
    md = claims_path(profile)
    lines = ["| claim | paper (dB) | ours (dB) | test set | holds | rule |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['paper']} | {r['ours']} | {r['test_set']} | **{r['holds']}** | {r['rule']} |"
              for r in rows]
    studies = data.get("studies", {})
    note = ""
    if any(not s.get("comparable_with_paper", True) for s in studies.values()):
        note = ("\nNOTE: measured on scikit-image's embedded photographs (offline default), NOT comparable with the "
                "paper's figures.\n")
    atomic_write_text(md, f"# The paper's claims in the {profile.name} profile\n\nWritten by `claims.write_claims` "
                          f"from results.json.\n\n" + "\n".join(lines) + "\n" + note)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(md.with_suffix(".csv"), buffer.getvalue())
    claims_figure({key: s["psnr"] for key, s in studies.items()}, OTHER_EXPERIMENTS, md.with_suffix(".png"))
    return rows


def claims_path(profile: Profile, ext: str = "md") -> Path:
    return report_path(profile.name, f"claims.{ext}")
