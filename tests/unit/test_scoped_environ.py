"""Issue 26: one way to change the environment for a block (advisor/io/environ.py), used by the CLI's quiet
output, offline mode and the goldens recorder."""

from __future__ import annotations

import os

import pytest

from advisor.io.environ import scoped_environ


def test_set_and_unset_names_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISOR_T_SET", "before")
    monkeypatch.delenv("ADVISOR_T_UNSET", raising=False)
    monkeypatch.delenv("ADVISOR_T_KEPT", raising=False)
    with pytest.raises(RuntimeError), scoped_environ({"ADVISOR_T_SET": "in", "ADVISOR_T_UNSET": "in"},
                                                     keep=("ADVISOR_T_KEPT",)):
        assert os.environ["ADVISOR_T_SET"] == os.environ["ADVISOR_T_UNSET"] == "in"
        os.environ["ADVISOR_T_KEPT"] = "set by the block"
        raise RuntimeError("the block fails: the environment still comes back")
    assert os.environ["ADVISOR_T_SET"] == "before"
    assert "ADVISOR_T_UNSET" not in os.environ and "ADVISOR_T_KEPT" not in os.environ


def test_offline_and_quiet_output_leave_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.cli.output import library_output
    from advisor.io.offline import OFFLINE_VARIABLES, offline

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    with offline(), library_output(False):
        assert all(os.environ[name] == "1" for name in OFFLINE_VARIABLES)
        assert os.environ != before
    assert dict(os.environ) == before
