"""The network architectures vidsr can run; parameter names follow the published checkpoints."""

from __future__ import annotations

from vidsr.models.arch.compact import SRVGGNetCompact
from vidsr.models.arch.rrdbnet import RRDBNet

__all__ = ["RRDBNet", "SRVGGNetCompact"]
