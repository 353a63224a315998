"""scripts/audit_dependencies.py: an unreachable vulnerability source is said plainly, never read as clean."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"
_spec = importlib.util.spec_from_file_location("audit_dependencies", _PATH)
audit = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = audit  # dataclasses look their module up there
_spec.loader.exec_module(audit)


def test_read_pins_takes_every_pin_once_without_extras(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("Django==6.1.3\npsycopg[binary,pool]==3.3.9  # db\n-r other.txt\n\ndjango==6.1.3\n")
    assert audit.read_pins((req,)) == [audit.Pin("Django", "6.1.3"), audit.Pin("psycopg", "3.3.9")]


def _report(*deps):
    return {"dependencies": list(deps), "fixes": []}


def test_an_unreachable_source_is_said_and_pins_are_compared_instead(monkeypatch, capsys):
    skipped = "Dependency not found on PyPI and could not be audited: django (6.1.3)"
    monkeypatch.setattr(audit, "run_pip_audit", lambda: _report({"name": "django", "skip_reason": skipped}))
    monkeypatch.setattr(audit, "read_pins", lambda: [audit.Pin("Django", "6.1.3")])
    monkeypatch.setattr(audit, "latest_version", lambda name: "6.1.4")

    assert audit.main([]) == 0
    out = capsys.readouterr().out
    assert "could not be reached for 1 of 1 pins" in out
    assert "newer release available" in out
    assert "no known vulnerabilities" not in out


def test_pip_audit_that_cannot_run_falls_back_to_the_comparison(monkeypatch, capsys):
    monkeypatch.setattr(audit, "run_pip_audit", lambda: None)
    monkeypatch.setattr(audit, "read_pins", lambda: [audit.Pin("Django", "6.1.3")])
    monkeypatch.setattr(audit, "latest_version", lambda name: "6.1.3")

    assert audit.main([]) == 0
    out = capsys.readouterr().out
    assert "could not reach its vulnerability source" in out
    assert "0 of 1 pins have a newer release" in out


def test_a_known_vulnerability_fails_the_build(monkeypatch, capsys):
    vuln = {"id": "PYSEC-0000-1", "fix_versions": ["6.1.4"], "description": "..."}
    monkeypatch.setattr(
        audit, "run_pip_audit", lambda: _report({"name": "django", "version": "6.1.3", "vulns": [vuln]})
    )
    monkeypatch.setattr(audit, "read_pins", lambda: [audit.Pin("Django", "6.1.3")])

    assert audit.main([]) == 1
    assert "VULNERABLE django 6.1.3: PYSEC-0000-1 (fixed in: 6.1.4)" in capsys.readouterr().out


def test_a_clean_audit_says_how_many_pins_were_looked_up(monkeypatch, capsys):
    monkeypatch.setattr(
        audit, "run_pip_audit", lambda: _report({"name": "django", "version": "6.1.3", "vulns": []})
    )
    monkeypatch.setattr(audit, "read_pins", lambda: [audit.Pin("Django", "6.1.3")])

    assert audit.main([]) == 0
    assert "1 pins looked up, no known vulnerabilities" in capsys.readouterr().out
