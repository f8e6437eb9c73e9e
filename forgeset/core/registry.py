"""One registry per component role: a spec `type` names a component, and the spec schema follows.

Each component class carries a pydantic `Params` model whose `type` field is a `Literal` of its
registered name; the role's union of `Params` (discriminated on `type`) becomes the spec field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import Discriminator, Field, Tag

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Maps a spec `type` string to the component class that implements it."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._classes: dict[str, T] = {}
        self._default: str | None = None

    def register(self, name: str, default: bool = False) -> Callable[[T], T]:
        """Class decorator: register `cls` under `name` (its Params.type must be Literal[name]).

        `default`: a spec entry of this role without a `type` is this component (one per role).
        """

        def decorate(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            if default and self._default is not None:
                raise ValueError(f"{self.role}: {self._default!r} is already the default, not {name!r}")
            declared = cls.Params.model_fields["type"].annotation.__args__  # type: ignore[attr-defined]
            if declared != (name,):
                raise TypeError(f"{cls.__name__}.Params.type must be Literal[{name!r}], got {declared}")
            self._classes[name] = cls
            if default:
                self._default = name
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
        if self._default is None:
            return Annotated[Union[params], Field(discriminator="type")]  # noqa: UP007
        default = self._default

        def tag(value: Any) -> Any:
            if isinstance(value, dict):
                return value.get("type", default)
            return getattr(value, "type", default)

        tagged = tuple(Annotated[cls.Params, Tag(name)] for name, cls in self._classes.items())  # type: ignore[attr-defined]
        known = ", ".join(repr(name) for name in self._classes)
        unknown = Discriminator(
            tag, custom_error_type="unknown_component_type", custom_error_message=f"type should be one of {known}"
        )
        return Annotated[Union[tagged], unknown]  # noqa: UP007
