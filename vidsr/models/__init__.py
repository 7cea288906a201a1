"""The models layer: network architectures, weight files of any known layout, the embedded models.

``choose_model`` (the entry point) turns one name or path into a :class:`LoadedModel` (a network
and what it needs) through ``resolve_model``, or blends two with ESRGAN's network interpolation.
The architecture families vidsr builds itself are in ``REGISTRY`` (one module each, in
``vidsr.models.architectures``); other layouts go to spandrel. Torch only: nothing here
imports the media layer or the layers above.
"""

from __future__ import annotations

from vidsr.defaults import DEFAULT_MODEL
from vidsr.models.architectures import REGISTRY, Architecture, Traits
from vidsr.models.choose import choose_model
from vidsr.models.descriptor import LoadedModel, describe_needs
from vidsr.models.interpolate import interpolate_models, write_interpolated
from vidsr.models.loader import SPANDREL_INSTALL, detect_and_build, load_model_file, load_state_dict_file
from vidsr.models.paths import cache_dir, models_dir
from vidsr.models.zoo import EMBEDDED, REAL_ESRGAN_CREDIT, ModelInfo, list_models, resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED",
    "REAL_ESRGAN_CREDIT",
    "REGISTRY",
    "SPANDREL_INSTALL",
    "Architecture",
    "LoadedModel",
    "ModelInfo",
    "Traits",
    "cache_dir",
    "choose_model",
    "describe_needs",
    "detect_and_build",
    "interpolate_models",
    "list_models",
    "load_model_file",
    "load_state_dict_file",
    "models_dir",
    "resolve_model",
    "write_interpolated",
]
