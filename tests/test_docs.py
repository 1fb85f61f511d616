"""The front door and the docs: README.md stays short, every figure in it comes from a committed
reference file, every link points to a file that exists, and the package's comments, docstrings and
help texts name no machine, commit or date and quote no measured figure (a figure there goes stale
the day the code changes: they point to docs/ or to the command that measures it instead)."""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
REFERENCE_FILES = [*sorted((DOCS / "reference").glob("*.json")), ROOT / "checkpoints" / "pretrained" / "card.json"]

# a decimal figure: 32.12, 78.6, -0.06 (the sign aside); not a version such as 2.14.1
FIGURE = re.compile(r"(?<![\d.])\d+\.\d+(?!\.?\d)")
VERSION_BEFORE = re.compile(r"(?:Python|torch|torchvision|bm3d|version|v|==)\s*$", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")

OFFENCES = {
    "hardware name": re.compile(r"\b(?:EPYC|Xeon|Ryzen|Threadripper|Core i[3579]|H100|A100|H200|RTX)\b"),
    "commit hash": re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
    "date": re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
    "figure in dB": re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*dB\b"),
    "speed-up": re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?x\s+(?:faster|slower|the time|float32|fp32|as fast)\b"
                           r"|(?<![\w.])\d+\.\d+x\b"),
    "throughput": re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:Mpix/s|steps/s|GFLOP/s)"),
}
# a time is a measurement when the words before it say so; "the ResNet's 300 s" is a setting
TIME = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*(?:s|seconds|min|minutes|hours?)\b")
MEASURED = re.compile(r"measured|took|takes|seen|came to|compil|costs?|about|in only", re.IGNORECASE)


def readme_figures(text: str) -> list[str]:
    return [m.group(0) for m in FIGURE.finditer(text) if not VERSION_BEFORE.search(text[max(0, m.start() - 12):m.start()])]


def reference_values() -> set[float]:
    return {float(m.group(0)) for path in REFERENCE_FILES for m in re.finditer(r"\d+\.\d+", path.read_text())}


def test_the_readme_is_a_front_door():
    assert README.stat().st_size <= 15_000, f"README.md is {README.stat().st_size} bytes: move detail to docs/"


def test_every_figure_in_the_readme_comes_from_a_reference_file():
    known = reference_values()
    missing = sorted({f for f in readme_figures(README.read_text()) if float(f) not in known}, key=float)
    assert not missing, f"figures in README.md found in no file of docs/reference/ or card.json: {missing}"


def test_the_figure_pattern_skips_versions():
    assert readme_figures("torch 2.14.1, Python 3.10, 32.12 dB, -0.06, 78.6 min") == ["32.12", "0.06", "78.6"]


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_links_point_to_files_that_exist():
    broken = []
    for page in markdown_files():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_docs_pages_exist():
    for name in ("claims", "pretrained", "your-own-images", "speed", "measuring", "design"):
        assert (DOCS / f"{name}.md").is_file(), name
    assert (DOCS / "reference" / "make_all_cpu.json").is_file()


def prose(path: Path):
    """(line, kind, text) for each comment, docstring and help= string of a Python file."""
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], "comment", token.string
    tree = ast.parse(source, str(path))
    # help=NAME: a help text kept in a module-level constant (cli.ENSEMBLE_HELP)
    constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                yield doc.lineno, "docstring", doc.value.value
        elif isinstance(node, ast.keyword) and node.arg == "help":
            value = constants.get(node.value.id, node.value) if isinstance(node.value, ast.Name) else node.value
            for part in ast.walk(value):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield part.lineno, "help", part.value


def offences(text: str) -> list[str]:
    found = [f"{what} {m.group(0)!r}" for what, pattern in OFFENCES.items() for m in pattern.finditer(text)]
    for m in TIME.finditer(text):
        sentence_start = max(text.rfind(". ", 0, m.start()), text.rfind("\n\n", 0, m.start()), 0)
        if MEASURED.search(text[max(sentence_start, m.start() - 80):m.start()]):
            found.append(f"measured time {m.group(0)!r}")
    return found


def test_the_offence_patterns():
    assert offences("measured on an AMD EPYC at commit 1f32980 on 2026-12-04: 0.13 dB, 6.8x the time, 2.4x")
    assert len(offences("took 117 s against 17 s")) == 2
    assert offences("2-4x faster; 0.609 Mpix/s")
    for clean in ("the ResNet's 300 s", "sha256s of the pixels", "Kodak 10x, BSD300 3x", "a 3x3 convolution",
                  "AVX2, AVX512-BF16 and AMX", "float32 and bfloat16", "see docs/speed.md"):
        assert offences(clean) == [], clean


def test_a_help_text_in_a_constant_is_read(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('HELP = ("about " "0.13 dB more")\n\n\ndef f(p):\n    p.add_argument("--x", help=HELP)\n')
    assert [(kind, offences(text)) for _, kind, text in prose(module)] == [("help", ["figure in dB '0.13 dB'"])]


def test_the_package_names_no_machine_commit_date_or_measured_figure():
    """Every module; the lines are listed so that each can be pointed at the doc or command instead."""
    found = [f"{path.relative_to(ROOT)}:{line} ({kind}): {offence}"
             for path in sorted((ROOT / "n2n_core").rglob("*.py")) for line, kind, text in prose(path)
             for offence in offences(text)]
    found = list(dict.fromkeys(found))  # a help constant used by two commands: once
    assert not found, "\n".join(["measured figures, machines, commits or dates in n2n_core:", *found])
