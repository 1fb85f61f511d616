"""The notebooks are thin: no function or class of their own, every step a call into n2n_core."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_defines_no_function_or_class(notebook):
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells
    for cell in cells:
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defined = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        assert not defined, f"{notebook.name} defines {defined}: move it into n2n_core"


def test_your_data_scores_denoised_files_against_the_originals(tmp_path, capsys):
    import numpy as np
    import torch
    from PIL import Image

    from n2n_core.studies import yourdata

    clean = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    for folder, image in (("clean", clean), ("noisy", noisy), ("out", (clean + noisy) / 2)):
        (tmp_path / folder).mkdir()
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / folder / "a.png")
    scores = yourdata.score_files([tmp_path / "clean" / "a.png"], [tmp_path / "noisy" / "a.png"], tmp_path / "out",
                                  figure=tmp_path / "fig.png")
    assert scores.names == ["a.png"] and scores.denoised[0] > scores.noisy[0] + 3  # halfway to clean: +6 dB
    assert scores.gains == [scores.denoised[0] - scores.noisy[0]] and scores.mean == scores.denoised[0]
    assert (tmp_path / "fig.png").stat().st_size > 1000 and "a.png: noisy" in capsys.readouterr().out
    yourdata.compare_scores(scores, scores, ("one", "two"))
    assert "mean over 1 held-out photographs: one" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="the command failed"):
        yourdata.cli("denoise", tmp_path / "missing.png", "--out", tmp_path / "x")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_never_rebinds_a_name_it_imports(notebook):
    """Notebook 08 once wrote `studies = [studies.run_study(...)]`: the list hid the module, and
    running the cell a second time (as one does in JupyterLab) failed. Every cell must run twice."""
    imported, assigned = set(), set()
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                           if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
    assert not imported & assigned, f"{notebook.name} rebinds {sorted(imported & assigned)}, which it imports"
