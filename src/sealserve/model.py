"""The model interface the service serves; shaped like ml_base.MLModel so seed models port with one import."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


class MLModelException(Exception):
    """Raised by a model when it cannot make a prediction."""


class MLModelSchemaValidationException(MLModelException):
    """Raised by a model when its input does not match its schema."""


class MLModel(ABC):
    """A model: its identity, typed input/output schemas and a predict method."""

    @property
    @abstractmethod
    def display_name(self) -> str: ...

    @property
    @abstractmethod
    def qualified_name(self) -> str: ...

    @property
    @abstractmethod
    def description(self) -> str: ...

    @property
    @abstractmethod
    def version(self) -> str: ...

    @property
    @abstractmethod
    def input_schema(self) -> type[BaseModel]: ...

    @property
    @abstractmethod
    def output_schema(self) -> type[BaseModel]: ...

    @abstractmethod
    def predict(self, data: Any) -> Any:
        """Predict for one validated input (an instance of `input_schema`)."""

    def predict_batch(self, data: Sequence[Any]) -> list[Any]:
        """Predict for many inputs; bundle-backed models override this with one vectorized call."""
        return [self.predict(item) for item in data]
