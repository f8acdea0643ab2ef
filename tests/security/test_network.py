"""Issue 25, "Network calls nobody asked for": no command opens a connection without `--allow-download`.

Every command runs as a real `python -m advisor` child. A `sitecustomize` module on its PYTHONPATH installs an audit
hook (`sys.addaudithook`) in that process and in every Python process it starts (the advisor passes PYTHONPATH on
to its workers), recording each `socket.getaddrinfo` and `socket.connect` in a log file. The environment has no
offline variable of its own and points every proxy at a closed local port, so a regression fails here and never
reaches the network. A control run shows the hook sees a real attempt (`--allow-download` with an unreachable
endpoint).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / "tests" / "fixtures" / "envs" / "a100_80gb_fa2_bnb.json"

_SITECUSTOMIZE = '''
import os, sys

def _record(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        with open(os.environ["ADVISOR_TEST_NETLOG"], "a") as log:
            log.write(f"{os.getpid()} {event} {args[:2]!r} {' '.join(sys.argv)[:120]}\\n")

sys.addaudithook(_record)
'''


@pytest.fixture(scope="module")
def gpt_neo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real gpt_neo with weights: importing its modeling module is what reached the Hub."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPTNeoConfig(hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                                       vocab_size=128, max_position_embeddings=64, window_size=16, bos_token_id=0,
                                       eos_token_id=0)
    folder = tmp_path_factory.mktemp("gpt_neo")
    transformers.GPTNeoForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_env(tmp_path: Path) -> dict[str, str]:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "NO_PROXY", "no_proxy")}
    dead = "http://127.0.0.1:9"
    env.update({"PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)]), "ADVISOR_TEST_NETLOG": str(tmp_path / "net.log"),
                "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
                "ADVISOR_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)})
    return env


def _run(env: dict[str, str], *argv: str, timeout: float = 600) -> tuple[int, str, list[str]]:
    done = subprocess.run([sys.executable, "-m", "advisor", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    log = Path(env["ADVISOR_TEST_NETLOG"])
    attempts = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stderr, attempts


def test_control_the_hook_sees_a_connection_attempt(offline_env: dict[str, str]) -> None:
    env = {**offline_env, "HF_ENDPOINT": "http://127.0.0.1:9"}
    code, err, attempts = _run(env, "recommend", "no-such-org/no-such-model", "--cpu", "--allow-download")
    assert code == 2 and "cannot download" in err
    assert any("127.0.0.1" in line for line in attempts), attempts


COMMANDS = {
    "recommend": ["recommend", "{neo}", "--cpu"],
    "recommend-json-gpu": ["recommend", "{neo}", "--env", str(ENV), "--format", "json"],
    "check": ["check", "{neo}", "--env", str(ENV)],
    "doctor": ["doctor", "{neo}", "--cpu"],
    "manifest": ["check", "--manifest", "{manifest}"],
    "matrix": ["matrix"],
    "matrix-fleet": ["matrix", "{neo}", "--gpu", "A100-80GB"],
    "probe": ["probe"],
    "explain": ["explain", "ATTN001"],
    "smoke": ["smoke", "{neo}", "--cpu", "--timeout", "240"],
    "bench": ["bench", "{neo}", "--cpu", "--repeats", "1", "--new-tokens", "2", "--timeout", "240"],
    "tune": ["tune", "{neo}", "--budget-seconds", "30", "--no-measurements"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_reaches_the_network_without_allow_download(offline_env: dict[str, str], gpt_neo: Path,
                                                               tmp_path: Path, command: str) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(json.dumps({"models": [str(gpt_neo)], "targets": [{"env": str(ENV)}, "A100-80GB"]}))
    argv = [a.format(neo=gpt_neo, manifest=manifest) for a in COMMANDS[command]]
    code, err, attempts = _run(offline_env, *argv)
    refused = command == "tune" and code == 2 and "has none" in err  # issue 31: tune refuses a machine with no GPU
    assert code in (0, 1) or refused, err[-2000:]
    assert attempts == [], "\n".join(attempts)


def test_the_offline_switch_is_scoped_to_the_command(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, the variables come back as they were: an embedding program keeps its own settings."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    code, _, err = cli("explain", "ATTN001")
    assert code == 0, err
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"
