"""What `from_pretrained(dtype=...)` does in a release, executed (issue 28: "right answer, wrong reason": the advisor
said a release before 4.56 would load `dtype=` in float32; the audit saw TypeError).

Usage: python scripts/check_dtype_kwarg.py OUT.json --wheels WHEELHOUSE [RELEASE ...]

Each release is installed from the wheelhouse (`scripts/generate_attention_history.py`'s installer: its own
declared dependencies, no index) into a throwaway folder and imported in a child, where a tiny Llama written with
`save_pretrained` is loaded twice: with `dtype=torch.float16` and with `torch_dtype=torch.float16`. The verdict is
what happened: the dtype the parameters got, or the exception's first line. rules/release.py's REL002 message cites
the file this writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_attention_history import _install, release_child_env  # noqa: E402  (one release-child builder)

RELEASES = ("4.36.2", "4.46.3", "4.51.3", "4.54.1", "4.56.2", "5.25.0")

CHILD = r"""
import json, tempfile, torch, transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
folder = tempfile.mkdtemp()
LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                             num_key_value_heads=2, vocab_size=256)).save_pretrained(folder)
out = {"transformers": transformers.__version__, "torch": torch.__version__}
for kwarg in ("dtype", "torch_dtype"):
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **{kwarg: torch.float16})
        out[kwarg] = f"loads in {str(next(model.parameters()).dtype).removeprefix('torch.')}"
    except Exception as exc:
        out[kwarg] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
print(json.dumps(out))
"""


def check(release: str, wheels: Path, cache: Path) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix=f"tf-{release}-") as target:
        error = _install(sys.executable, wheels, Path(target), release)
        if error:
            return {"release": release, "error": error}
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=False,
                              env=release_child_env(Path(target), cache, extra={"OMP_NUM_THREADS": "1"}), timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"release": release, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        return {"release": release, **json.loads(lines[-1])}


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--wheels":
        print(__doc__.splitlines()[3], file=sys.stderr)
        return 2
    out, wheels, releases = Path(argv[0]), Path(argv[2]), argv[3:] or list(RELEASES)
    with tempfile.TemporaryDirectory(prefix="dtype-kwarg-") as cache:
        results = []
        for release in releases:
            results.append(check(release, wheels, Path(cache)))
            print(json.dumps(results[-1]), flush=True)
    out.write_text(json.dumps({"generated_by": "python scripts/check_dtype_kwarg.py OUT --wheels WHEELHOUSE "
                               + " ".join(releases), "results": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
