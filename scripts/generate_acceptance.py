#!/usr/bin/env python
"""Build `data/acceptance/transformers-<release>.json`: the attention acceptance each stored release executes.

Per release: `pip install --target` into a throwaway folder (the wheelhouse and install machinery of
`generate_attention_history.py`, cached under `.dev/acceptance/`), then `python -m advisor.knowledge.acceptance`
in a child whose importable transformers is that release (`PYTHONPATH=<folder>:<repo>`, offline, `nice`). The child
builds every model type with every implementation the release accepts by name, through the release's own load
path (see `advisor/knowledge/acceptance.py` for the method). At most two children at once.

Each output file is the reproduction its facts cite: the wheel (file name and sha256), the interpreter and torch,
the packages installed beside it, the method, the command; one line per model type: its class, one verdict
character per implementation ('1' accepted, '0' refused, '?' undecided, '-' name not accepted by the release), and
the reason of every '0' and '?' (and notes on some '1').

    python scripts/generate_acceptance.py                      # every release of data/attention_history.json
    python scripts/generate_acceptance.py --releases 5.4.0 4.57.6
    python scripts/generate_acceptance.py --refresh --releases 5.25.0   # redo one that exists

Resume-friendly: a release whose output file exists is skipped (unless --refresh); a child's raw result is cached
under `.dev/acceptance/results/`, so a rerun after a crash only writes what is missing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import generate_attention_history as gah  # noqa: E402  (the install/wheelhouse machinery)

from advisor.knowledge.acceptance import IMPLS, METHOD, final_verdicts  # noqa: E402

DEFAULT_OUTPUT = REPO / "data" / "acceptance"
DEFAULT_CACHE = REPO / ".dev" / "acceptance"
WHEEL_CACHES = (Path.home() / ".cache" / "advisor" / "transformers-wheels", REPO / ".dev" / "attention_history" / "wheels")
CHARS = {True: "1", False: "0"}
LEGEND = ("types: model_type -> [class built, one character per `impls` entry ('1' accepted, '0' refused, "
          "'?' undecided, '-' the release does not accept the name at all), notes: impl -> reason of each '0' and '?' "
          "(and how some '1' were accepted)]")


def stored_releases() -> list[str]:
    history = json.loads((REPO / "data" / "attention_history.json").read_text())
    return list(history["releases"])


def _seed_wheelhouse(wheels: Path) -> None:
    """Reuse wheels already downloaded by the other generators (no network for those)."""
    wheels.mkdir(parents=True, exist_ok=True)
    for cache in WHEEL_CACHES:
        if cache.is_dir():
            for wheel in cache.glob("*.whl"):
                if not (wheels / wheel.name).exists():
                    shutil.copy2(wheel, wheels / wheel.name)


def _wheel(wheels: Path, release: str) -> dict[str, str]:
    found = sorted(wheels.glob(f"transformers-{release}-*.whl"))
    if not found:
        return {}
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    return {"file": found[0].name, "sha256": digest}


# Optional packages some model types need to build (`requires_backends`), installed once into `<cache>/extras`
# (`pip install --target --no-deps` from the wheelhouse) and put on every child's path; each file records them.
EXTRAS = {"scipy": "1.17.1"}  # EomtLoss, EomtDinov3Loss, VideomtLoss (the Hungarian matcher)
# Those not installable here: their model types stay undecided with the release's own "requires" message.
NOT_INSTALLABLE = {
    "torchvision": "no CPU wheel for torch 2.13.0 on PyPI: torchvision 0.28.0 (torch==2.13.0) is a CUDA build, its "
                   "_C.so needs libc10_cuda.so, so `import torchvision` fails on the CPU torch",
    "timm": "imports torchvision (timm 0.9.16, 1.0.3, 1.0.31: timm/layers/create_norm.py), see torchvision",
    "torchaudio": "no release for torch 2.13 on PyPI (newest 2.11.1)",
    "natten": "no wheel for torch 2.13 CPU on PyPI",
    "detectron2": "not on PyPI",
    "pytorch-quantization": "not on PyPI for python 3.11",
}

# Model types built with a stand-in for a default sub-model that cannot be built here: type -> the stand-in class.
STAND_INS = dict.fromkeys(("detr", "conditional_detr", "deformable_detr", "table-transformer", "dab-detr"),
                          "ResNetBackbone")
# Config fields that make a model type's config valid where its default config does not build, as the release's
# own tests build it (tests/models/<type>/test_modeling_<type>.py) or its config documents. Used only when the
# default fails, so a type decided from its default is never decided otherwise. A dict with `model_type` is a
# sub-config, built by the composite's own `__init__`. None of these fields is read by an attention check: the
# verdict is the class's and its sub-models' (for a composite, the sub-models named here: another pair can differ).
_DECODER = {"is_decoder": True, "add_cross_attention": True}  # as from_encoder_decoder_configs sets them
_PREDICTION = ({"prediction_length": 7}, "required (`The prediction_length config needs to be specified`); 7 as the "
                                         "release's model tester")
CONFIG_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "autoformer": _PREDICTION,
    "informer": _PREDICTION,
    "time_series_transformer": _PREDICTION,
    "encoder-decoder": ({"encoder": {"model_type": "bert"}, "decoder": {"model_type": "bert", **_DECODER}},
                        "composite without sub-configs; bert+bert as BertEncoderDecoderModelTest"),
    "speech-encoder-decoder": ({"encoder": {"model_type": "wav2vec2"}, "decoder": {"model_type": "bert", **_DECODER}},
                               "composite without sub-configs; wav2vec2+bert as Wav2Vec2BertModelTest"),
    "vision-encoder-decoder": ({"encoder": {"model_type": "vit"}, "decoder": {"model_type": "gpt2", **_DECODER}},
                               "composite without sub-configs; vit+gpt2 as VIT2GPT2Test"),
    "vision-text-dual-encoder": ({"vision_config": {"model_type": "vit"}, "text_config": {"model_type": "bert"}},
                                 "composite without sub-configs; vit+bert as ViTBertModelTest"),
    **dict.fromkeys(STAND_INS, (
        {"use_timm_backbone": False, "use_pretrained_backbone": False, "backbone": None,
         "backbone_config": {"model_type": "resnet", "out_features": ["stage4"]}},
        "the default backbone is timm's resnet50 (timm not installable here); transformers' ResNet backbone as the "
        "release's model tester builds it (use_timm_backbone=False). The backbone is a sub-model the release checks "
        "too, so only a refusal by another class is kept (stand_in_verdicts)")),
    "esm": ({"vocab_size": 33, "pad_token_id": 1}, "vocab_size defaults to None; ESM-2's 33 tokens, pad 1, as "
                                                   "EsmModelTester"),
    **dict.fromkeys(("hunyuan_v1_dense", "hunyuan_v1_moe"), (
        {"head_dim": 128}, "head_dim stays None (`head_dim**-0.5` fails); 128, the default the config documents")),
    "ministral": ({"head_dim": 128}, "head_dim stays None; hidden_size // num_attention_heads = 4096 // 32, the "
                                     "default the config documents"),
    "nemotron": ({"num_key_value_heads": 48, "head_dim": 128},
                 "both stay None (`num_heads // None`); num_attention_heads (48) and hidden_size // "
                 "num_attention_heads (6144 // 48), the defaults the config documents"),
    **dict.fromkeys(("aya_vision", "llava_onevision"), (
        {"vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
                           "patch_size": 14, "image_size": 384, "num_hidden_layers": 26, "num_attention_heads": 16,
                           "vision_use_head": False}},
        "the default SigLIP vision config has 14 heads for 1152 (`embed_dim must be divisible by num_heads`); the "
        "same config with SigLIP-so400m's 16 heads")),
    "dots1": ({"n_routed_experts": 128, "n_shared_experts": 2},
              "both default to None (`torch.empty(None, ...)`); dots.llm1's 128 routed and 2 shared experts"),
    "lfm2_moe": ({"num_hidden_layers": 2, "layer_types": ["full_attention", "conv"]},
                 "layer_types defaults to None; one attention and one conv layer, as Lfm2MoeModelTester"),
    "chameleon": ({"vocabulary_map": {"<image>": 8711, "IMGIMGBA": 4}},
                  "vocabulary_map defaults to None (the tokenizer's map); the image token and one image code, as the "
                  "model tester's map"),
    "emu3": ({"vocabulary_map": {"<|extra_200|>": 151850, "<image>": 151851, "<|visual token 000000|>": 4}},
             "vocabulary_map defaults to None; the end-of-line, image and one visual token, as the model tester's map"),
}
# Not in the table: musicgen and musicgen_melody. Their base class (MusicgenModel) is the decoder alone, built
# from the decoder's config; with text_encoder/audio_encoder/decoder sub-configs the composite config builds and the
# class still fails (AttributeError 'dropout'), in every release: they stay undecided with that reason.


def stand_in_verdicts(row: dict[str, Any]) -> dict[str, Any]:
    """A type built with a stand-in sub-model (STAND_INS): an acceptance is the stand-in's, not the default
    sub-model's, and a refusal by the stand-in says nothing of the default: both undecided. A refusal by another
    class (the model itself) holds for the default config too. Idempotent."""
    stand_in = STAND_INS.get(row["model_type"])
    if stand_in is None or "config" not in row:
        return row
    for impl, verdict in row["cells"].items():
        reason = row["reasons"].get(impl, "")
        if impl != "eager" and (verdict is True or (verdict is False and stand_in in reason)):
            row["cells"][impl] = (f"undecided: {'accepted' if verdict else 'refused'} with {stand_in} standing in "
                                  "for the default timm backbone (timm not installable here)")
            row["reasons"].pop(impl, None)
    return row


HIDDEN = ("kernels",)  # newer than some releases can import (5.4's hub_kernels fails under kernels 0.19)


def _shadow_site(python: str, cache: Path) -> Path:
    """The interpreter's site-packages as links, without HIDDEN: the child runs with `-S` and this on its path,
    so a release sees torch and the advisor's needs, and a `kernels` only where it installed one itself."""
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    shadow = cache / "site"
    if shadow.exists():
        shutil.rmtree(shadow)
    shadow.mkdir(parents=True)
    for entry in Path(site).iterdir():
        if entry.name.split("-")[0].split(".")[0].lower() in HIDDEN or entry.suffix == ".pth":
            continue
        (shadow / entry.name).symlink_to(entry)
    return shadow


def _child_env(env_dir: Path, cache: Path) -> dict[str, str]:
    """The history's release child, with the stub site (the accelerate/hub stand-ins), the extras, one thread."""
    return gah.release_child_env(env_dir, cache, site=(cache / "site", cache / "extras"),
                                 extra={"OMP_NUM_THREADS": "1"})


def install_extras(python: str, cache: Path) -> dict[str, str]:
    """EXTRAS into `<cache>/extras` (once; downloaded into the wheelhouse if missing): name -> version."""
    target, wheels = cache / "extras", cache / "wheels"
    marker = target / (".installed-" + "-".join(f"{k}-{v}" for k, v in sorted(EXTRAS.items())))
    if not marker.exists():
        requirements = [f"{name}=={version}" for name, version in sorted(EXTRAS.items())]
        args = ["install", "--quiet", "--no-deps", "--no-index", "--find-links", str(wheels), "--target", str(target)]
        if target.exists():
            shutil.rmtree(target)
        if gah._pip(python, *args, *requirements).returncode != 0:
            fetched = gah._pip(python, "download", "--quiet", "--no-deps", "--only-binary", ":all:", "--dest",
                               str(wheels), *requirements)
            if fetched.returncode != 0 or gah._pip(python, *args, *requirements).returncode != 0:
                raise SystemExit(f"could not install {' '.join(requirements)}: {gah._tail(fetched.stderr)}")
        marker.touch()
    return dict(EXTRAS)


def write_config_fields(cache: Path) -> Path:
    """CONFIG_FIELDS' fields as the child reads them (`--config-fields`)."""
    path = cache / "config_fields.json"
    path.write_text(json.dumps({k: fields for k, (fields, _) in sorted(CONFIG_FIELDS.items())}, indent=1) + "\n")
    return path


def hub_floor(wheels: Path, release: str) -> str | None:
    """The huggingface-hub minimum the release's wheel declares (`Requires-Dist`)."""
    found = sorted(wheels.glob(f"transformers-{release}-*.whl"))
    if not found:
        return None
    with zipfile.ZipFile(found[0]) as wheel:
        meta = wheel.read(f"transformers-{release}.dist-info/METADATA").decode()
    for line in meta.splitlines():
        match = re.match(r"Requires-Dist: huggingface-hub\s*\(?([^;)]*)", line, re.I)
        if match:
            for part in match.group(1).split(","):
                if part.strip().startswith(">="):
                    return part.strip()[2:].strip()
    return None


def _install(python: str, wheels: Path, target: Path, release: str) -> str | None:
    """`pip install --target` of the release with huggingface-hub at the release's declared minimum: the newest
    hub's stricter dataclass validation rejects default configs of some 5.x releases (5.4.0: cohere2's
    `use_cache`), which the hub those releases were made with accepts."""
    floor = hub_floor(wheels, release)
    requirements = [f"transformers=={release}"] + ([f"huggingface-hub=={floor}"] if floor else [])
    args = ["install", "--quiet", "--no-index", "--find-links", str(wheels), "--target", str(target), *requirements]
    for attempt in range(2):
        if target.exists():
            shutil.rmtree(target)
        proc = gah._pip(python, *args)
        if proc.returncode == 0:
            return None
        if attempt == 0:
            with gah._download_lock:
                fetched = gah._pip(python, "download", "--quiet", "--prefer-binary", "--dest", str(wheels),
                                   *requirements)
            if fetched.returncode != 0:
                return f"pip download {' '.join(requirements)} failed: {gah._tail(fetched.stderr)}"
    return f"pip install {' '.join(requirements)} failed: {gah._tail(proc.stderr)}"


def undecided_types(record: dict[str, Any]) -> list[str]:
    """The model types of a child result with an undecided cell."""
    return [row["model_type"] for row in record["rows"]
            if any(not isinstance(v, bool) for v in row["cells"].values())]


def run_release(release: str, *, python: str, cache: Path, refresh: bool, keep_env: bool,
                timeout: int, redo: list[str] | None = None) -> dict[str, Any]:
    """Install one release and run the acceptance child; the raw result (cached).

    `redo`: run only these model types and replace their rows in the cached result (the other rows keep their
    verdicts: the extras and config fields change nothing for a type that built); `redone` records it."""
    result_path = cache / "results" / f"{release}.json"
    cached: dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
    if redo is not None:
        if "rows" not in cached:
            return {"release": release, "error": f"no cached child result to redo types in ({result_path})"}
        if not redo:
            gah.log(f"{release}: nothing undecided")
            return cached
    elif "rows" in cached and not refresh:
        gah.log(f"{release}: cached child result")
        return cached
    env_dir = cache / "envs" / release
    marker = env_dir / ".installed-by-generate-acceptance"
    started = time.monotonic()
    record: dict[str, Any] = {"release": release}
    error = None if marker.exists() else _install(python, cache / "wheels", env_dir, release)
    if error:
        record["error"] = error
    else:
        marker.touch()
        record["packages"] = gah._installed_versions(env_dir)
        with tempfile.TemporaryDirectory() as cwd:
            try:
                proc = subprocess.run(
                    ["nice", "-n", "10", python, "-S", "-m", "advisor.knowledge.acceptance",
                     "--config-fields", str(cache / "config_fields.json"),
                     *(["--types", ",".join(redo)] if redo else [])],
                    check=False, capture_output=True, text=True, timeout=timeout,
                    env=_child_env(env_dir, cache), cwd=cwd,
                )
            except subprocess.TimeoutExpired:
                proc = None
        if proc is None:
            record["error"] = f"the acceptance child timed out after {timeout} s"
        elif proc.returncode != 0:
            record["error"] = f"the acceptance child failed: {gah._tail(proc.stderr)}"
        else:
            try:
                record.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            except (json.JSONDecodeError, IndexError) as exc:
                record["error"] = f"the acceptance child printed no JSON: {exc}: {proc.stdout[:200]!r}"
            if record.get("transformers") not in (None, release):
                record["error"] = f"ran transformers {record.get('transformers')} instead of {release}"
    if not keep_env:
        shutil.rmtree(env_dir, ignore_errors=True)
    record["seconds"] = round(time.monotonic() - started, 1)
    record["extras"] = dict(EXTRAS)
    if redo and "error" not in record:
        fresh = {row["model_type"]: row for row in record["rows"]}
        before = cached.get("redone", {"types": [], "seconds": 0})
        record = {**cached, "rows": [fresh.get(row["model_type"], row) for row in cached["rows"]],
                  "packages": record["packages"], "extras": record["extras"],
                  "redone": {"types": sorted({*before["types"], *fresh}),
                             "seconds": round(before["seconds"] + record["seconds"], 1)}}
    if "error" not in record:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(record) + "\n")
    rows = len(record.get("rows", []))
    gah.log(f"{release}: {'FAILED: ' + record['error'] if 'error' in record else f'{rows} model types'}"
            f" ({record['seconds']} s)")
    return record


def compact(record: dict[str, Any], wheel: dict[str, str], python: str) -> dict[str, Any]:
    """The committed form: one line per model type."""
    executed = list(record["impls"])
    impls = [i for i in IMPLS if i != "eager"]
    types: dict[str, list[Any]] = {}
    configs: dict[str, dict[str, Any]] = {}
    counts = {"accepted": 0, "refused": 0, "undecided": 0}
    for row in sorted(record["rows"], key=lambda r: r["model_type"]):
        row = stand_in_verdicts(final_verdicts(copy.deepcopy(row)))
        if "config" in row:
            configs[row["model_type"]] = row["config"]
        flags, notes = [], {}
        for impl in impls:
            if impl not in executed:
                flags.append("-")
                continue
            verdict = row["cells"].get(impl)
            if isinstance(verdict, bool):
                flags.append(CHARS[verdict])
                counts["accepted" if verdict else "refused"] += 1
                if impl in row.get("reasons", {}):
                    notes[impl] = row["reasons"][impl]
                elif verdict and impl in row.get("applied", {}):
                    notes[impl] = f"accepted: applied as {row['applied'][impl]}"
            else:
                flags.append("?")
                counts["undecided"] += 1
                notes[impl] = str(verdict).removeprefix("undecided: ")
        types[row["model_type"]] = [row["class"], "".join(flags), notes]
    torch_version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], check=False,
                                   capture_output=True, text=True).stdout.strip()
    packages = record.get("packages", {})
    return {
        "schema_version": 1,
        "transformers": record["release"],
        "wheel": wheel,
        "generated_by": f"python scripts/generate_acceptance.py --releases {record['release']}",
        "method": METHOD,
        "api": record["api"],
        "environment": {
            "python": sys.version.split()[0],
            "torch": torch_version,
            "packages": {k: v for k, v in sorted(packages.items())
                         if k in ("huggingface-hub", "tokenizers", "safetensors", "numpy", "kernels")},
            "flash_stubs": "flash-attn 2.8.3, flash-attn-3 3.0.0b1, flash-attn-4 4.0.0b4 (stubs); "
                           + ", ".join(record.get("patched", [])) + " patched True",
            **({"extras": record["extras"], "not_installable": sorted(NOT_INSTALLABLE)} if "extras" in record else {}),
        },
        **({"config_fields": configs} if configs else {}),
        **({"redone": record["redone"]} if "redone" in record else {}),
        "impls": impls,
        "not_accepted": [i for i in impls if i not in executed],
        "seconds": record.get("seconds"),
        "counts": counts,
        "legend": LEGEND,
        "types": types,
    }


def dump(data: dict[str, Any]) -> str:
    """One line per model type (the history table's compact form)."""
    return gah.dump(data, nested=("types",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", nargs="+", help="releases to run (default: every stored release)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder of the per-release files")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=2, help="releases at once (max 2)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--refresh", action="store_true", help="redo releases whose file exists")
    parser.add_argument("--keep-envs", action="store_true")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per release child")
    parser.add_argument("--redo-undecided", action="store_true",
                        help="run only the model types the cached child result left undecided (with today's extras "
                             "and config fields) and replace their rows")
    parser.add_argument("--types", nargs="+", help="with --redo-undecided: only these model types")
    parser.add_argument("--recompact", action="store_true",
                        help="rewrite the files of releases whose child result is cached, without running anything")
    args = parser.parse_args(argv)
    if args.recompact:
        cache = args.cache_dir.resolve()
        for path in sorted((cache / "results").glob("*.json")):
            record = json.loads(path.read_text())
            release = record["release"]
            if args.releases and release not in args.releases:
                continue
            out = args.output / f"transformers-{release}.json"
            out.write_text(dump(compact(record, _wheel(cache / "wheels", release), args.python)))
            gah.log(f"rewrote {out.name} from {path.name}")
        return 0

    cache: Path = args.cache_dir.resolve()
    _seed_wheelhouse(cache / "wheels")
    _shadow_site(args.python, cache)
    install_extras(args.python, cache)
    write_config_fields(cache)
    releases = args.releases or stored_releases()
    releases = sorted(dict.fromkeys(releases), key=Version, reverse=True)  # newest first
    todo = [r for r in releases if args.refresh or args.redo_undecided
            or not (args.output / f"transformers-{r}.json").exists()]
    gah.log(f"{len(todo)} of {len(releases)} releases to run: {' '.join(todo)}")
    args.output.mkdir(parents=True, exist_ok=True)
    failed = []

    def one(release: str) -> None:
        redo = None
        if args.redo_undecided:
            path = cache / "results" / f"{release}.json"
            redo = undecided_types(json.loads(path.read_text())) if path.exists() else []
            redo = [t for t in redo if not args.types or t in args.types]
        record = run_release(release, python=args.python, cache=cache, refresh=args.refresh,
                             keep_env=args.keep_envs, timeout=args.timeout, redo=redo)
        if "error" in record:
            failed.append(release)
            return
        out = args.output / f"transformers-{release}.json"
        out.write_text(dump(compact(record, _wheel(cache / "wheels", release), args.python)))
        gah.log(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(args.jobs, 2))) as pool:
        list(pool.map(one, todo))
    gah.log(f"done: {len(todo) - len(failed)} written, {len(failed)} failed {failed or ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
