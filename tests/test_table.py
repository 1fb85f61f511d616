"""Table 1: formatting, the paper's numbers beside ours, the checks, and the pipeline end to end on
tiny synthetic data (two noise types, three test sets, a stand-in for BM3D)."""
from __future__ import annotations

import csv
import io
import json
import sys
import types

import pytest

from n2n_core.evaluation import baselines
from n2n_core.studies import experiment
from n2n_core.evaluation.table import Table1
from n2n_core.training.runtime import Runtime


def _table(n2n=30.0, clean=30.1, noisy=20.0, sets=("kodak", "bsd300", "set14")) -> Table1:
    table = Table1()
    for i, s in enumerate(sets):
        table.add("gaussian", s, "input", noisy, 24, 1)
        table.add("gaussian", s, "clean", clean + i, 24, 1)
        table.add("gaussian", s, "n2n", n2n + i, 24, 1)
    table.add("gaussian", "kodak", "baseline", 29.0, 24, 1)
    table.missing[("gaussian", "bsd300", "baseline")] = "not run"
    return table


def test_rows_put_the_papers_number_and_the_difference_beside_ours():
    rows = {(r["test_set"], r["method"]): r for r in _table().rows()}
    kodak_n2n = rows[("kodak", "n2n")]
    assert kodak_n2n["ours_db"] == 30.0 and kodak_n2n["paper_db"] == 32.48
    assert kodak_n2n["difference_db"] == pytest.approx(30.0 - 32.48)
    assert rows[("kodak", "baseline")]["method_name"] == "BM3D" and rows[("kodak", "baseline")]["paper_db"] == 31.82
    assert rows[("bsd300", "baseline")]["ours_db"] == "" and rows[("bsd300", "baseline")]["note"] == "not run"
    assert rows[("kodak", "input")]["paper_db"] == ""  # the paper gives no input PSNR
    # the average over the three sets, as the paper's last row
    assert rows[("average", "n2n")]["ours_db"] == pytest.approx(31.0) and rows[("average", "n2n")]["paper_db"] == 31.61


def test_markdown_and_csv():
    table = _table()
    md = table.to_markdown()
    assert "## Gaussian noise, sigma = 25" in md
    assert "| Kodak (24) | 20.00 | 29.00 | 31.82 | 30.10 | 32.50 | 30.00 | 32.48 | -0.10 |" in md
    assert "| BSD300 (24) | 20.00 | not run | 30.34 |" in md
    assert "| average |" in md
    parsed = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert len(parsed) == 4 * 4  # 3 sets + average, 4 methods
    assert {"noise", "test_set", "method", "ours_db", "paper_db", "difference_db"} <= set(parsed[0])


def test_a_table_at_another_level_says_so_and_shows_no_paper_numbers():
    """The heading gives the level that was measured (it used to print sigma = 25 whatever the
    configuration said), and the paper's numbers exist at its own level only."""
    table = _table()
    table.levels["gaussian"] = 15.0
    md = table.to_markdown()
    assert "## Gaussian noise, sigma = 15" in md and "sigma = 25" not in md
    assert all(r["paper_db"] == "" for r in table.rows())


def test_no_average_without_all_three_sets_and_no_paper_numbers_when_not_comparable():
    table = _table(sets=("kodak",))
    assert table.test_sets("gaussian") == ["kodak"]
    table.comparable = False
    assert all(r["paper_db"] == "" for r in table.rows())
    assert "n/a" in table.to_markdown()


def test_check_names_every_failed_claim():
    assert _table(n2n=30.0, clean=30.1).check({"gaussian": 7.0}, 0.3) == []
    problems = _table(n2n=30.0, clean=30.5).check({"gaussian": 7.0}, 0.3)
    assert len(problems) == 3 and all("apart" in p for p in problems) and "gaussian, kodak" in problems[0]
    problems = _table(n2n=26.0, clean=26.1, noisy=20.0).check({"gaussian": 7.0}, 0.3)
    assert any("kodak: N2N 26.00 dB beats the noisy input (20.00 dB) by less than 7.0 dB" in p for p in problems)
    table = _table()
    del table.cells[("gaussian", "set14", "clean")]
    assert any("set14: missing clean-target" in p for p in table.check({"gaussian": 7.0}, 0.3))


def test_write_saves_markdown_and_csv_and_plots_draws_the_figure(tmp_path):
    from n2n_core.evaluation.plots import table1_figure

    table = _table()
    written = table.write(tmp_path)
    assert sorted(p.name for p in written.values()) == ["table1.csv", "table1.md"]
    assert written["md"].read_text().startswith("# Table 1")
    assert table1_figure(table, tmp_path / "table1.png").stat().st_size > 5000
    assert not list(tmp_path.glob(".*"))


@pytest.fixture
def table_data(data_folder, make_png, monkeypatch):
    """The data folder with three test sets."""
    for name in ("bsd300", "set14"):
        for i in range(2):
            make_png(data_folder / name / f"{name}_{i}.png", 30, 34, seed=300 + i)
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    return data_folder


def test_table1_end_to_end_on_tiny_data(table_data, tiny_profile, output_dir, monkeypatch):
    calls = []
    fake = types.ModuleType("bm3d")
    fake.bm3d_rgb = lambda z, sigma_psd, profile="np": calls.append(sigma_psd) or z
    monkeypatch.setitem(sys.modules, "bm3d", fake)
    monkeypatch.setattr(baselines, "available", lambda: True)
    import dataclasses
    profile = dataclasses.replace(tiny_profile, eval=dataclasses.replace(tiny_profile.eval, baseline_sets=("kodak",)))

    experiment.prepare_patches(profile, seed=0)
    runs = experiment.train_table_models(profile, seed=0, rt=Runtime.resolve("cpu"), noises=("poisson", "bernoulli"),
                                         progress=False)
    assert sorted(runs) == [("bernoulli", "clean"), ("bernoulli", "noisy"), ("poisson", "clean"), ("poisson", "noisy")]
    assert runs[("poisson", "noisy")].checkpoint.name == "unet_n2n_poisson.pth"
    assert runs[("bernoulli", "clean")].config["noise"]["kind"] == "bernoulli"

    table = experiment.paper_table(runs, profile, seed=0, rt=Runtime.resolve("cpu"))
    assert table.noises() == ["poisson", "bernoulli"]
    assert table.test_sets("poisson") == ["kodak", "bsd300", "set14", "average"]
    assert table.value("poisson", "kodak", "baseline") is not None  # the stand-in ran on Kodak only
    assert table.missing[("poisson", "bsd300", "baseline")] == "not run"
    assert table.missing[("bernoulli", "kodak", "baseline")] == "not run"  # no BM3D for Bernoulli
    assert calls == [1.0]  # one Kodak image (eval.limit), Anscombe domain
    reports = output_dir / "reports" / "smoke"
    assert all((reports / f"table1.{ext}").is_file() for ext in ("md", "csv", "png"))
    stored = json.loads((reports / "results.json").read_text())["table1"]
    assert {(r["noise"], r["test_set"], r["method"]) for r in stored} >= {("bernoulli", "set14", "n2n")}

    # a rerun reloads the finished checkpoints and reads BM3D from its cache
    again = experiment.train_table_models(profile, seed=0, rt=Runtime.resolve("cpu"), noises=("poisson",), progress=False)
    assert again[("poisson", "noisy")].history.step == runs[("poisson", "noisy")].history.step
    experiment.paper_table(again, profile, seed=0, rt=Runtime.resolve("cpu"))
    assert calls == [1.0]


def test_table1_says_when_bm3d_is_not_installed(table_data, tiny_profile, monkeypatch):
    monkeypatch.setattr(baselines, "available", lambda: False)
    experiment.prepare_patches(tiny_profile, seed=0)
    runs = experiment.train_table_models(tiny_profile, seed=0, rt=Runtime.resolve("cpu"), noises=("gaussian",), progress=False)
    table = experiment.paper_table(runs, tiny_profile, seed=0, rt=Runtime.resolve("cpu"))
    assert table.missing[("gaussian", "kodak", "baseline")] == "not installed"
    assert "not installed" in table.to_markdown()
