"""Build the wheels ``benchmarks/gpu_check.py`` needs on the GPU machine's image, and print their size.

    python benchmarks/gpu_bundle.py                       # -> build/gpu-bundle/*.whl (needs PyPI)
    python benchmarks/gpu_bundle.py --dry-run             # list what it would fetch; no network
    python benchmarks/gpu_bundle.py --evalsuite-only      # only evalsuite's own wheel; no network

The image (Python 3.12, torch 2.11 CUDA, transformers 5.17, ...; see IMAGE) cannot download anything
and takes at most 64 MiB of carried files. The bundle is: evalsuite's own wheel, built from this
checkout, plus every distribution in the install-requirement closure of ROOTS (what gpu_check imports:
lm-eval and the parts of evalsuite's dependencies its engine and ``hf`` backend import) that the image
lacks. Versions are the ones installed in the environment running this script (the tested ones) where
it has them. Wheels are fetched with ``pip download --no-deps --only-binary=:all:`` for CPython 3.12 on
manylinux x86_64 (pure-Python wheels fit any platform); the few pure-Python distributions published
only as source archives are built into wheels here. The script fails when the bundle exceeds the limit.

On the GPU machine (the bundle travels as an ignored path named in ``carry``)::

    pip install --no-index --no-deps --target /tmp/site build/gpu-bundle/*.whl
    PYTHONPATH=/tmp/site python benchmarks/gpu_check.py --out $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_BYTES = 64 * 1024 * 1024
# What gpu_check.py imports beyond the image: lm-eval (HFLM, Instance, TemplateLM) and the dependencies
# of evalsuite that its config, engine and hf backend import; torchao for the GPU-marked quantization tests
# (benchmarks/gpu_run.sh). Not textattack, gguf, bitsandbytes (its CUDA wheel alone is over the limit) or
# the other quantizers.
ROOTS = (
    "lm-eval", "pydantic", "tenacity", "httpx", "psutil", "rich", "jinja2", "pyyaml", "accelerate",
    "torchao",
)  # fmt: skip
# The GPU machine's image (its package list); their own dependencies are there too.
IMAGE = {
    "absl-py", "accelerate", "aiohttp", "aiosignal", "annotated-doc", "anyio", "attrs", "certifi",
    "charset-normalizer", "click", "filelock", "frozenlist", "fsspec", "h11", "hf-xet", "httpcore",
    "httpx", "huggingface-hub", "idna", "jinja2", "joblib", "markdown-it-py", "markupsafe", "mdurl",
    "mpmath", "multidict", "networkx", "numpy", "packaging", "pandas", "pillow", "propcache", "psutil",
    "pyarrow", "pygments", "pytest", "python-dateutil", "pytz", "pyyaml", "regex", "requests", "rich",
    "sacrebleu", "safetensors", "scikit-learn", "scipy", "sentencepiece", "six", "sniffio",
    "statsmodels", "sympy", "threadpoolctl", "tokenizers", "torch", "tqdm", "transformers", "triton",
    "typing-extensions", "tzdata", "urllib3", "xxhash", "yarl", "iniconfig", "pluggy", "patsy",
    "setuptools", "pip", "wheel",
}  # fmt: skip
# NVIDIA's CUDA wheels (torch's) are on the image; never fetch them.
IMAGE_PREFIXES = ("nvidia-",)
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [] if args.evalsuite_only else missing(closure(ROOTS))
    specs = [pinned(name) for name in wanted]
    print(f"evalsuite wheel from {ROOT}")
    for spec in specs:
        print(f"fetch {spec}")
    if args.dry_run:
        print(f"{len(specs)} distributions to fetch, plus evalsuite's wheel (dry run: nothing fetched)")
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    # Stale wheels would travel too, and two versions of one distribution stop the install there.
    stale = args.dest.glob("evalsuite-*.whl") if args.evalsuite_only else args.dest.glob("*.whl")
    for old in stale:
        old.unlink()
    build_own_wheel(args.dest)
    for spec in specs:
        fetch(spec, args.dest)
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:8.2f} MiB  {wheel.name}")
    print(
        f"{len(wheels)} wheels, {total / 2**20:.2f} MiB in {args.dest} (limit {LIMIT_BYTES / 2**20:.0f} MiB)"
    )
    if total > LIMIT_BYTES:
        print("the bundle is over the limit", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=ROOT / "build" / "gpu-bundle")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched; fetch nothing")
    parser.add_argument("--evalsuite-only", action="store_true", help="build only evalsuite's own wheel")
    return parser.parse_args(argv)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: Iterable[str]) -> list[str]:
    """The roots and their install requirements, recursively, for CPython 3.12 on Linux, read from the
    installed distributions' metadata (a requirement not installed here is kept, its own left out)."""
    from packaging.requirements import Requirement

    environment = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.0", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}  # fmt: skip
    seen: dict[str, None] = {}
    todo = [normalize(r) for r in roots]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen[name] = None
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue  # extras and other platforms
            todo.append(normalize(requirement.name))
    return sorted(seen)


def missing(names: Iterable[str]) -> list[str]:
    return [n for n in names if n not in IMAGE and not n.startswith(IMAGE_PREFIXES) and n != "evalsuite"]


def pinned(name: str) -> str:
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def fetch(spec: str, dest: Path) -> None:
    """The wheel for CPython 3.12 on manylinux x86_64; a pure-Python distribution published only as a
    source archive (rouge-score, sqlitedict, word2number) is built into a wheel here instead."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", PYTHON, "--implementation", "cp", "--dest", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    if subprocess.run([*command, spec], stderr=subprocess.DEVNULL).returncode == 0:
        return
    print(f"no wheel of {spec} for Python {PYTHON}: building one from its source archive")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), spec],
        check=True,
    )
    for built in dest.glob("*.whl"):
        if (
            not built.name.endswith("-none-any.whl")
            and normalize(built.name.split("-")[0]) == spec.split("==")[0]
        ):
            raise SystemExit(f"{built.name} is not pure Python: it will not install on the image")


def build_own_wheel(dest: Path) -> None:
    """evalsuite's wheel from this checkout, offline (the build backend of the running environment)."""
    for old in dest.glob("evalsuite-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="evalsuite-wheel-") as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--quiet", "--wheel-dir", str(dest), str(ROOT)],
            check=True,
            cwd=scratch,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
