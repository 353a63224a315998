"""Every code a reply run can fail with is a ``RunError``, and docs/websocket.md lists exactly them.

The codes are collected from the code itself (the ``LLMError`` and ``StepFailed`` a reply can
end with), so a new way to fail cannot reach users without a line in the protocol document.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from chat import pipeline, steps, tasks
from chat.errors import RunError

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "websocket.md").read_text()
# An optional step's failures never end a run: the picture's are reported as ``image_failed``.
OPTIONAL_STEPS = {step.name for step in steps.STEPS if step.optional} | {"image_failed"}


def documented_run_failures() -> set[str]:
    """The codes of the error table's rows that say "the reply failed"."""
    section = DOC.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    codes: set[str] = set()
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].startswith("the reply failed"):
            codes |= set(re.findall(r"`([a-z_]+)`", cells[0]))
    return codes


def failure_codes_in(module: str) -> set[str]:
    """The first argument of every ``LLMError(...)`` and ``StepFailed(...)`` written in a module."""
    tree = ast.parse((ROOT / module).read_text())
    found: set[str] = set()

    class Calls(ast.NodeVisitor):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            if node.name not in OPTIONAL_STEPS:
                self.generic_visit(node)

        def visit_Call(self, node: ast.Call) -> None:
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in ("LLMError", "StepFailed") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
                elif isinstance(first, ast.Attribute) and getattr(first.value, "id", "") == "RunError":
                    found.add(RunError[first.attr].value)
            self.generic_visit(node)

    Calls().visit(tree)
    return found


def test_the_document_lists_exactly_the_run_error_codes():
    assert documented_run_failures() == {code.value for code in RunError}


def test_every_code_a_reply_can_fail_with_is_a_run_error():
    raised = failure_codes_in("chat/llm.py") | failure_codes_in("chat/pipeline.py")
    assert {"connection", "timeout", "incomplete", "empty_reply", "gave_up", "timed_out"} <= raised
    assert raised <= set(RunError)
    assert set(tasks.UNEXPECTED_MESSAGES) <= set(RunError)  # a crash or a lost database
    assert set(pipeline.USER_MESSAGES) <= set(RunError)
