"""Install size: a fresh venv with torch, then this package, then each optional extra.

    nice python benchmarks/install_size.py [--source .] [--torch "torch==2.13.0+cpu"]

Prints the site-packages size (MB, `du -sm`) after each step and the largest packages, and
writes benchmarks/out/install_size.json. Without --torch, pip resolves torch as the README's
command does (from PyPI: the newest allowed release, a CUDA build on Linux); with it, that
requirement is installed first (a CPU build, say, from PyTorch's CPU index).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

EXTRAS = ["pandas", "onnx", "bench"]


def site_packages(venv: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.check_output([venv / "bin" / "python", "-c", code], text=True).strip())


def megabytes(path: Path) -> int:
    return int(subprocess.check_output(["du", "-sm", str(path)], text=True).split()[0])


def largest(path: Path, n: int = 10) -> list[tuple[str, int]]:
    sizes = [(p.name, megabytes(p)) for p in path.iterdir() if p.is_dir()]
    return sorted(sizes, key=lambda s: -s[1])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=".", help="the package to install (default .)")
    parser.add_argument("--torch", default="",
                        help="a torch requirement to install first (default: what pip resolves)")
    args = parser.parse_args()
    source = str(Path(args.source).absolute())
    steps: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bert4rec-size-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir"]
        base = megabytes(site_packages(venv))
        first = [("torch", args.torch)] if args.torch else []
        for label, requirement in [*first, ("bert4rec", source),
                                   *[(f"+[{e}]", f"{source}[{e}]") for e in EXTRAS]]:
            subprocess.run([*pip, requirement], check=True)
            size = megabytes(site_packages(venv)) - base
            steps.append({"step": label, "site_packages_mb": size})
            print(f"{label:12} {size:6,} MB (site-packages less the empty venv's {base} MB)")
        top = largest(site_packages(venv))
    print("largest:", ", ".join(f"{name} {mb} MB" for name, mb in top))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "install_size.json").write_text(json.dumps({"steps": steps, "largest": top},
                                                      indent=2) + "\n")


if __name__ == "__main__":
    main()
