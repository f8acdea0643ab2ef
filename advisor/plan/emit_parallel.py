"""The Python a tensor-parallel plan runs under torchrun (issue 30): kwargs JSON -> a script for every rank."""

from __future__ import annotations

from typing import Any

from advisor.plan.emit import _TEMPLATES

__all__ = ["tensor_snippet"]


def tensor_snippet(*, model_name: str, auto_class: str, kwargs: dict[str, Any], tokenizer: dict[str, Any],
                   generative: bool, size: int, script: str = "script.py") -> str:
    """A script that loads the model exactly as planned on each rank; torchrun supplies RANK and WORLD_SIZE."""
    return _TEMPLATES.get_template("load_tp.py.j2").render(
        model=model_name, auto_class=auto_class, kwargs=kwargs, tokenizer=tokenizer, generative=generative,
        size=size, script=script, distributed="distributed_config" in kwargs,
    )
