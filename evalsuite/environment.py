"""Facts about where and with what a run was made, for the manifest."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil
import torch

from evalsuite.config import RunConfig
from evalsuite.manifest import Hardware, ManifestHeader
from evalsuite.records import MANIFEST_SCHEMA

PACKAGES = (
    "evalsuite",
    "torch",
    "transformers",
    "lm_eval",
    "datasets",
    "accelerate",
    "tokenizers",
    "torchao",
    "bitsandbytes",
    "gguf",
    "numpy",
    "scipy",
    "pydantic",
)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_sha() -> str | None:
    """The commit of the evalsuite checkout this code runs from; None when not in a git checkout."""
    folder = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def hardware() -> Hardware:
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return Hardware(
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        memory_bytes=psutil.virtual_memory().total,
        cuda_devices=cuda,
    )


def manifest_header(config: RunConfig) -> ManifestHeader:
    return ManifestHeader(
        schema=MANIFEST_SCHEMA,
        run=config.run.name,
        created=utc_now(),
        seed=config.run.seed,
        config=config.model_dump(mode="json"),
        versions=package_versions(),
        git_sha=git_sha(),
        hardware=hardware(),
    )
