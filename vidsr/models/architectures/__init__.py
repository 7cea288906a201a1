"""The architecture families vidsr runs itself, in the order the loader tries them.

Adding one is one module: an object with the :class:`Architecture` protocol's methods (see
``esrgan.py`` and ``compact.py``), named in ``REGISTRY`` below or given to ``REGISTRY.register``.
The first family whose ``detect`` accepts the tensors wins, so a family whose keys are a subset
of another's comes after it; a layout none of them knows goes to spandrel, if installed.
"""

from __future__ import annotations

from collections.abc import Iterator

from vidsr.errors import ModelError
from vidsr.models.architectures.base import Architecture, Hyperparameters, Traits
from vidsr.models.architectures.compact import COMPACT
from vidsr.models.architectures.esrgan import ESRGAN

__all__ = ["REGISTRY", "Architecture", "Hyperparameters", "Registry", "Traits"]


class Registry:
    """An ordered set of architecture families, looked up by detection or by name."""

    def __init__(self, *architectures: Architecture) -> None:
        self._architectures: tuple[Architecture, ...] = ()
        for architecture in architectures:
            self.register(architecture)

    def __iter__(self) -> Iterator[Architecture]:
        return iter(self._architectures)

    def register(self, architecture: Architecture, *, before: str | None = None) -> None:
        """Add a family last, or just before the family called ``before`` (whose keys its own include)."""
        if any(known.name == architecture.name for known in self._architectures):
            raise ValueError(f"an architecture called {architecture.name} is registered already")
        names = [known.name for known in self._architectures]
        position = names.index(before) if before is not None else len(names)
        self._architectures = (*self._architectures[:position], architecture, *self._architectures[position:])

    def unregister(self, name: str) -> None:
        self._architectures = tuple(known for known in self._architectures if known.name != name)

    def named(self, name: str) -> Architecture:
        """The family called ``name`` (as ``LoadedModel.architecture`` says); ModelError if none is."""
        for architecture in self._architectures:
            if architecture.name == name:
                return architecture
        raise ModelError(f"vidsr has no network called {name}")

    def names(self) -> tuple[str, ...]:
        return tuple(architecture.name for architecture in self._architectures)

    def layouts(self) -> tuple[str, ...]:
        """Every file layout the registered families read, one line each."""
        return tuple(layout for architecture in self._architectures for layout in architecture.layouts)


# ESRGAN first: its keys (conv_first + body.N.rdb1) never pass the compact family's detect, but
# the order is the contract, not that accident.
REGISTRY = Registry(ESRGAN, COMPACT)
