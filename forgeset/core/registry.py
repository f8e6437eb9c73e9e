"""One registry per component role: a spec `type` names a component, and the spec schema follows.

Each component class carries a pydantic `Params` model whose `type` field is a `Literal` of its
registered name; the role's union of `Params` (discriminated on `type`) becomes the spec field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import Field

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Maps a spec `type` string to the component class that implements it."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register `cls` under `name` (its Params.type must be Literal[name])."""

        def decorate(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            declared = cls.Params.model_fields["type"].annotation.__args__  # type: ignore[attr-defined]
            if declared != (name,):
                raise TypeError(f"{cls.__name__}.Params.type must be Literal[{name!r}], got {declared}")
            self._classes[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> T:
        """The class registered under `name`, or a KeyError that lists the known names."""
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.role} {name!r}; known: {', '.join(sorted(self._classes))}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def params_union(self) -> Any:
        """The discriminated union of every registered component's Params, for the spec schema."""
        params = tuple(cls.Params for cls in self._classes.values())  # type: ignore[attr-defined]
        if len(params) == 1:
            return params[0]
        return Annotated[Union[params], Field(discriminator="type")]  # noqa: UP007
