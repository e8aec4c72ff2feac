"""`bert4rec export`: a run directory's model as ONNX or a torch.export program."""

from __future__ import annotations

import argparse


def run_export(args: argparse.Namespace) -> int:
    from bert4rec.inference.export import export  # torch and onnx load only when the command runs

    path = export(args.run_dir, args.format, args.out, args.k, overwrite=args.overwrite)
    print(f"wrote {path}, {path.name}.json (its inputs and outputs) and "
          f"{path.with_name('items.csv')} (vocabulary index -> item id)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", help="write a run's model as ONNX or a torch.export program for serving",
        description="Write RUN_DIR's model as a graph that takes histories of vocabulary "
        "indices and returns every item's score and the top K (docs/export.md), with "
        "items.csv (index -> item id) and a JSON file naming the inputs and outputs, as one "
        "unit: written into a temporary folder, the model checked against PyTorch, then "
        "renamed into place. The folder must be new or empty (or an earlier export, with "
        "--overwrite). ONNX needs "
        "`pip install 'bert4rec[onnx]'`.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by fit")
    export.add_argument("--format", choices=["onnx", "pt2"], default="onnx",
                        help="onnx (onnxruntime and other runtimes) or pt2 (torch.export, "
                        "for PyTorch without bert4rec); default onnx")
    export.add_argument("--out", help="folder to write into (default RUN_DIR/export)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export in the folder (only an export of "
                        "bert4rec's that holds nothing else is replaced)")
    export.add_argument("-k", type=int, default=10,
                        help="how many top items the graph returns (default 10)")
    export.set_defaults(handler=run_export)
