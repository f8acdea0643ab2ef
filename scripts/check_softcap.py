"""What a transformers release does with Gemma-2's attention softcapping on a flash-attn without `softcap`
(before 2.6.0), executed (issue 28: a fact about a release comes from running that release's code).

Usage: python scripts/check_softcap.py OUT.json [RELEASE ...]   (pip must reach PyPI the first time)

Each release is installed into a throwaway folder by `scripts/generate_attention_history.py`'s installer (its own
declared dependencies, from the wheelhouse `.dev/attention_history/wheels`) and imported in a child (`python -S`
with the interpreter's site-packages linked in except `kernels`, as scripts/generate_acceptance.py). There a stub
`flash_attn` 2.5.9 package stands in for the CUDA kernel, with flash-attn 2.5.9's own signatures of
`flash_attn_func` / `flash_attn_varlen_func` (no `softcap`; v2.5.9.post1 flash_attn/flash_attn_interface.py) and
its metadata, and the release's `is_flash_attn_2_available` answers True (it also requires CUDA; the acceptance
method, advisor.knowledge.acceptance.patch_availability). A tiny Gemma-2 (`attn_logit_softcapping=50`) is built with
`attn_implementation="flash_attention_2"` in bfloat16 and runs one forward on the CPU, without an attention mask
(with an all-ones mask where the release cannot run without one: 4.47's Gemma-2 flash path reads `mask.shape`).
The verdict is what happened: `raises` (the release passes `softcap=` and the 2.5.9 kernel rejects it: TypeError),
`refuses` (the release raises before the kernel, naming softcap), `drops` (the kernel ran, called without
`softcap`: the cap is silently gone), or `fails` (an error unrelated to softcap, kept with its message).
data/softcap.json's rows cite the file this writes.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_acceptance import _shadow_site  # noqa: E402  (the interpreter's site-packages without `kernels`)
from generate_attention_history import DEFAULT_CACHE, _install, release_child_env  # noqa: E402  (one installer)

RELEASES = ("4.43.4", "4.46.3", "4.47.1", "4.48.3", "4.50.3", "4.54.1", "4.55.4", "4.57.6", "5.20.2", "5.21.1",
            "5.25.0")

STUB = r'''
__version__ = "2.5.9"
CALLS = []


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    alibi_slopes=None, deterministic=False, return_attn_probs=False):
    CALLS.append("flash_attn_func")
    return q


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    CALLS.append("flash_attn_varlen_func")
    return q


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None, rotary_sin=None,
                            cache_seqlens=None, cache_batch_idx=None, block_table=None, softmax_scale=None,
                            causal=False, window_size=(-1, -1), rotary_interleaved=True, alibi_slopes=None,
                            num_splits=0):
    CALLS.append("flash_attn_with_kvcache")
    return q
'''

PADDING = r'''
import torch  # flash-attn 2.5.9's bert_padding, in plain torch (the release unpads a masked batch with it)


def index_first_axis(x, indices):
    return x[indices]


def unpad_input(hidden_states, attention_mask):
    seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
    return flat[indices], indices, cu_seqlens, int(seqlens.max())


def pad_input(hidden_states, indices, batch, seqlen):
    out = torch.zeros(batch * seqlen, *hidden_states.shape[1:], dtype=hidden_states.dtype)
    out[indices] = hidden_states
    return out.view(batch, seqlen, *hidden_states.shape[1:])
'''


CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import torch, transformers
from advisor.knowledge.acceptance import patch_availability
patch_availability(("is_flash_attn_2_available",))  # before the modeling modules bind it; FA2 only
import flash_attn
from transformers import Gemma2Config, Gemma2ForCausalLM
out = {"transformers": transformers.__version__, "torch": torch.__version__, "flash_attn_stub": flash_attn.__version__}
config = Gemma2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, attn_logit_softcapping=50.0,
                      sliding_window=64)
config._attn_implementation = "flash_attention_2"
torch.set_default_dtype(torch.bfloat16)
try:
    cls = Gemma2ForCausalLM
    if hasattr(cls, "_autoset_attn_implementation"):
        import inspect
        params = inspect.signature(cls._autoset_attn_implementation).parameters
        wanted = {"torch_dtype": torch.bfloat16, "device_map": {"": 0}, "use_flash_attention_2": False}
        config = cls._autoset_attn_implementation(config, **{k: v for k, v in wanted.items() if k in params})
    model = cls(config).eval()
    out["attn_implementation"] = model.config._attn_implementation
except Exception as exc:
    out["verdict"] = "build fails"
    out["error"] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    print(json.dumps(out)); sys.exit()
def forward(mask):
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        return model(ids, attention_mask=torch.ones_like(ids) if mask else None, use_cache=False).logits
for mask in (False, True):  # no mask first; a release that needs one (4.47's seq_len) gets the all-ones mask
    flash_attn.CALLS.clear()
    out["attention_mask"] = mask
    try:
        logits = forward(mask)
        out["kernel_calls"] = list(flash_attn.CALLS)
        out["verdict"] = "drops" if flash_attn.CALLS else "kernel not reached"
        out["logits_finite"] = bool(torch.isfinite(logits.float()).all())
        out.pop("error", None)
        break
    except Exception as exc:
        text = (str(exc).splitlines() or [""])[0]
        out["error"] = f"{type(exc).__name__}: {text[:200]}"
        if "softcap" in text:
            out["verdict"] = "raises" if isinstance(exc, TypeError) else "refuses"
            break
        out["verdict"] = "fails"
print(json.dumps(out))
"""


def _stub_site(folder: Path) -> Path:
    """flash-attn 2.5.9 as an importable package with its metadata (what transformers asks for its version)."""
    package = folder / "flash_attn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(STUB)
    (package / "flash_attn_interface.py").write_text("from flash_attn import flash_attn_func, flash_attn_varlen_func\n")
    (package / "bert_padding.py").write_text(PADDING)
    info = folder / "flash_attn-2.5.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flash-attn\nVersion: 2.5.9\n")
    (info / "top_level.txt").write_text("flash_attn\n")
    (info / "RECORD").write_text("flash_attn/__init__.py,,\n")
    return folder


def check(release: str, wheels: Path, cache: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"tf-{release}-") as target, \
            tempfile.TemporaryDirectory(prefix="flash-stub-") as stub:
        error = _install(sys.executable, wheels, Path(target), release)
        if error:
            return {"release": release, "error": error}
        env = release_child_env(Path(target), cache, site=(_stub_site(Path(stub)), cache / "site"),
                                extra={"OMP_NUM_THREADS": "1"})
        done = subprocess.run([sys.executable, "-S", "-c", CHILD], capture_output=True, text=True, check=False,
                              env=env, timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            return {"release": release, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        return {"release": release, **json.loads(lines[-1])}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.splitlines()[3], file=sys.stderr)
        return 2
    out, releases = Path(argv[0]), argv[1:] or list(RELEASES)
    wheels = DEFAULT_CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    kept = json.loads(out.read_text())["results"] if out.is_file() else []  # a rerun of some releases keeps the rest
    with tempfile.TemporaryDirectory(prefix="softcap-") as cache:
        _shadow_site(sys.executable, Path(cache))
        results = [r for r in kept if r["release"] not in releases]
        for release in releases:
            results.append(check(release, wheels, Path(cache)))
            print(json.dumps(results[-1]), flush=True)
    results.sort(key=lambda r: tuple(int(p) for p in r["release"].split(".")))
    command = " ".join(["python scripts/check_softcap.py", argv[0], *(r["release"] for r in results)])
    out.write_text(json.dumps({"generated_by": command,
                               "machine": f"{platform.machine()} {platform.system()}, 2-core shared CPU box",
                               "results": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
