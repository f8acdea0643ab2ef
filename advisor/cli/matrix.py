"""`advisor matrix`: the attention support table, its history, the full matrix, or the fleet view."""

from __future__ import annotations

import argparse

from pydantic import BaseModel

from advisor.cli.output import emit, write
from advisor.errors import UsageError

__all__ = ["cmd_matrix"]


def cmd_matrix(args: argparse.Namespace) -> int:
    if args.models or args.env or args.gpu:
        from advisor.fleet.grid import build_fleet
        from advisor.render.fleet_text import fleet_text

        if args.history or args.full or args.transformers:
            raise UsageError("the fleet view (MODEL..., --env, --gpu) does not combine with --history/--full/--transformers")
        fleet = build_fleet(args.models, args.env, args.gpu, batch=args.batch, seq_len=args.seq_len)
        if args.format == "text":
            write(args, fleet_text(fleet))
        else:
            emit(args, fleet)
        return 0
    if args.history and args.full:
        raise UsageError("--history and --full are different views; use one")
    obj: BaseModel
    if args.history:
        from advisor.matrix.history import history_report

        obj = history_report(args.history)
    elif args.full:
        from advisor.matrix.history import full_matrix
        from advisor.matrix.table import filter_model_types

        full = full_matrix(args.transformers)
        keep = set(filter_model_types([a.model_type for a in full.architectures], args.model_type,
                                      full.transformers))
        obj = full.model_copy(update={"architectures": [a for a in full.architectures if a.model_type in keep]})
    else:
        from advisor.knowledge import load_knowledge
        from advisor.matrix.table import matrix_view
        from advisor.model.attention_support import table_for

        table, where = table_for(args.transformers, load_knowledge(), refresh=args.refresh)
        obj = matrix_view(table, where, args.transformers, args.model_type)
    emit(args, obj)
    return 0
