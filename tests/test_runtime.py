"""The runtime is decided once: only ``Runtime`` resolves a device or a number format, and a façade
called without one resolves it a single time for everything below it."""
from __future__ import annotations

import ast

import torch

from n2n_core.training import devices
from n2n_core.studies import experiment
from n2n_core.training.runtime import Runtime
from test_imports import PACKAGE, module_name

RULES = {"resolve_device", "resolve_precision", "fast_bf16"}  # what turns 'auto' into a choice (devices)
# who may call them: the Runtime, and resolve_precision itself (it asks fast_bf16 for 'auto')
DECIDERS = {"n2n_core.training.runtime.Runtime.resolve", "n2n_core.training.runtime.Runtime.with_precision",
            "n2n_core.training.devices.resolve_precision"}


def callers_of_the_rules() -> set[str]:
    """'module.function' (methods as 'module.Class.method') of every call of ``RULES`` in n2n_core,
    by name or as an attribute (``devices.fast_bf16(...)``); a call outside any function is
    reported under the module's name."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)

        def visit(node: ast.AST, scope: str) -> None:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                scope = f"{scope}.{node.name}"
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                if name in RULES:
                    found.add(scope)
            for child in ast.iter_child_nodes(node):
                visit(child, scope)

        visit(ast.parse(path.read_text(), str(path)), module)
    return found


def test_only_the_runtime_resolves_a_device_or_a_number_format():
    """An AST check rather than a count at run time: it covers every path, also those no test runs
    (the CLI on a GPU, `make bench`, the notebooks' slider)."""
    assert callers_of_the_rules() - DECIDERS == set()
    assert {"n2n_core.training.runtime.Runtime.resolve"} <= callers_of_the_rules()  # (the check finds calls at all)


def test_a_facade_without_a_runtime_resolves_it_once(monkeypatch):
    calls = []
    real = devices.fast_bf16
    monkeypatch.setattr(devices, "fast_bf16", lambda device, features=None: calls.append(device) or real(device))
    clean = torch.rand(3, 24, 20, generator=torch.Generator().manual_seed(0))
    for level in (10.0, 30.0):
        calls.clear()
        experiment.denoise_demo(torch.nn.Identity(), clean, level, rt=None)
        assert len(calls) == 1  # Runtime.resolve(); denoise_tensor and infer take it as it is
    calls.clear()
    experiment.denoise_demo(torch.nn.Identity(), clean, 10.0, rt=Runtime(torch.device("cpu"), "fp32"))
    assert calls == []
