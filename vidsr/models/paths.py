"""Where vidsr keeps things on the user's machine: the models folder and the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["CACHE_ENV", "MODELS_DIR_ENV", "cache_dir", "models_dir"]

MODELS_DIR_ENV = "VIDSR_MODELS_DIR"
CACHE_ENV = "VIDSR_CACHE_DIR"


def models_dir() -> Path:
    """The user's models folder: $VIDSR_MODELS_DIR or <user data dir>/vidsr/models."""
    override = os.environ.get(MODELS_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("vidsr")) / "models"


def cache_dir() -> Path:
    """Where converted models and compiled kernels are cached: $VIDSR_CACHE_DIR or the user cache folder."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("vidsr"))
