"""Whether a bitsandbytes release runs on the CPU, executed from its wheel (issue 28: a fact about a library comes
from its wheel, not its docs).

Usage: python scripts/check_bnb_cpu.py OUT.json [VERSION ...]   (pip must reach PyPI; about 1 minute per release)

Each release's x86-64 Linux wheel is fetched into a wheelhouse (`.dev/attention_history/wheels`) and installed
into a throwaway folder without its dependencies by `scripts/generate_attention_history.py`'s installer, then put
first on the path of a child (that script's release-child environment: offline, no user site), where the installed
torch and transformers load a tiny Llama written with `save_pretrained` through
`BitsAndBytesConfig(load_in_8bit=True)` and `(load_in_4bit=True)` with `device_map="cpu"`, then run one forward; and the library's own ops on a CPU tensor (int8 vectorwise quantization,
NF4 quantize/dequantize), apart from transformers' gates. The verdict per mode is what happened: `runs` (finite
logits from bitsandbytes layers; an op's round trip within 20% relative error), or the first line of the error. data/bitsandbytes.json's
`cpu` rows cite the file this writes.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_attention_history import DEFAULT_CACHE, install_wheel, release_child_env  # noqa: E402  (one installer)

VERSIONS = ("0.45.5", "0.46.0", "0.46.1", "0.47.0", "0.48.2", "0.49.2")

CHILD = r"""
import json, sys, tempfile, warnings
warnings.simplefilter("ignore")
import torch, transformers, bitsandbytes
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM
transformers.logging.set_verbosity_error()
folder = tempfile.mkdtemp()
torch.manual_seed(0)
LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, vocab_size=256)).save_pretrained(folder)
out = {"bitsandbytes": bitsandbytes.__version__, "bitsandbytes_file": bitsandbytes.__file__,
       "torch": torch.__version__, "transformers": transformers.__version__}
# the library's own quantization ops on a CPU tensor, apart from transformers' gates (version floor, device checks)
import bitsandbytes.functional as F
a = torch.randn(32, 64)
def _op_8bit():
    q, scale, _ = F.int8_vectorwise_quant(a)
    return q.float() * scale[:, None] / 127
def _op_4bit():
    q, state = F.quantize_4bit(a, quant_type="nf4")
    return F.dequantize_4bit(q, state)
for name, op in (("op_8bit", _op_8bit), ("op_4bit", _op_4bit)):
    try:
        err = float(((op() - a).norm() / a.norm()).item())
        out[name] = "runs" if err < 0.2 else f"ran, relative error {err:.3f}"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
for mode in ("load_in_8bit", "load_in_4bit"):
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=BitsAndBytesConfig(**{mode: True}),
                                                     device_map="cpu")
        layer = type(model.model.layers[0].mlp.up_proj)
        with torch.no_grad():
            logits = model(torch.tensor([[1, 2, 3, 4]])).logits
        ok = bool(torch.isfinite(logits).all()) and layer.__module__.startswith("bitsandbytes")
        out[mode] = "runs" if ok else f"ran, but {layer.__module__}.{layer.__name__} / non-finite logits"
        out[mode + "_layer"] = f"{layer.__module__}.{layer.__name__}"
    except Exception as exc:
        out[mode] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
print(json.dumps(out))
"""


def check(version: str, wheels: Path = DEFAULT_CACHE / "wheels") -> dict[str, object]:
    """One release: install its wheel apart, run the child with it first on the path."""
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"bnb-{version}-") as target:
        error = install_wheel(sys.executable, wheels, Path(target), f"bitsandbytes=={version}", no_deps=True)
        if error:
            return {"version": version, "error": error}
        done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=False,
                              env=release_child_env(Path(target), Path(target), extra={"OMP_NUM_THREADS": "1"}),
                              timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"version": version, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        return {"version": version, **json.loads(lines[-1])}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    out, versions = Path(argv[0]), argv[1:] or list(VERSIONS)
    results = []
    for version in versions:
        result = check(version)
        print(json.dumps(result), flush=True)
        results.append(result)
    out.write_text(json.dumps({"generated_by": "python scripts/check_bnb_cpu.py " + " ".join(argv),
                               "machine": f"{platform.machine()} {platform.system()}, {platform.processor() or ''}".strip(", "),
                               "results": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
