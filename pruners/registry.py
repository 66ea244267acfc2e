"""Name → class registries with did-you-mean errors and entry-point discovery.

Every pluggable axis of sparsebench (pruners, allocations, reparams, tasks) is a :class:`Registry`:
a class is added with a decorator (``@register_pruner("snip")``), looked up by name, and a name
that does not exist is a :class:`ConfigError` that suggests the closest registered names.  No
module dispatches on method names with if/elif; it asks a registry.

``ConfigError`` is the one exception type for bad user input anywhere in the suite.  The CLI turns
it into a single line on stderr and exit status 2, so its message must name the problem *and* the
fix.  It lives here (not in ``benchmark``) because pruners, reparams and graphon raise it too, and
imports flow from ``benchmark`` to the other packages, never back.
"""
from __future__ import annotations

import contextlib
import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

#: Every registry ever created, so plugin loading (``pruners.plugins``) can see and roll back what a
#: plugin registered anywhere (pruners, reparams, allocations, ...).
REGISTRIES: list["Registry"] = []
_ORIGINS: list[str] = []


@contextlib.contextmanager
def registering_as(origin: str) -> Iterator[None]:
    """While active, registrations that do not name an origin are attributed to ``origin``
    (used by ``pruners.plugins`` so a plugin's ``@register_pruner`` reads "plugin path.py")."""
    _ORIGINS.append(origin)
    try:
        yield
    finally:
        _ORIGINS.pop()


class ConfigError(ValueError):
    """Bad user input: a one-line message that names the problem and the fix."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean X?)' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


#: Functions ``fn(registry)`` run by every registry lookup; ``pruners.plugins`` adds its loader on import.
DISCOVERERS: list[Callable[["Registry"], None]] = []


class Registry(Generic[T]):
    """A named collection of classes (or factories) of one kind.

    Args:
        kind: what the entries are, used in messages ("pruner", "task", ...).
        entry_point_group: Python entry-point group scanned lazily for installed plugins
            (e.g. ``sparsebench.pruners``); ``None`` disables discovery.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._discovered = False
        REGISTRIES.append(self)

    def register(self, name: str, *, origin: str = "built-in") -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; a second registration is refused."""

        def deco(obj: T) -> T:
            self.add(name, obj, origin=origin)
            return obj

        return deco

    def add(self, name: str, obj: T, *, origin: str = "built-in") -> None:
        if origin == "built-in" and _ORIGINS:
            origin = _ORIGINS[-1]
        if not isinstance(name, str) or not name or name.strip() != name:
            raise ConfigError(f"{self.kind} name {name!r} is not a valid name; use a non-empty string "
                              "without surrounding spaces")
        if name in self._entries and self._entries[name] is not obj:
            raise ConfigError(
                f"{self.kind} {name!r} from {origin} is already registered by {self._origins[name]}; "
                "rename one of them")
        self._entries[name] = obj
        self._origins[name] = origin
        try:
            obj.registry_name = name  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass

    def unregister(self, name: str) -> None:
        """Remove an entry (used by plugin loading to roll back a failed import)."""
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def discover(self) -> None:
        """Load plugins: the entry points of this registry's group (once per process) and the
        targets listed in ``$SPARSEBENCH_PLUGINS`` (each once), through the loader that
        ``pruners.plugins`` installs in :data:`DISCOVERERS` (this module does not import it)."""
        for fn in DISCOVERERS:
            fn(self)

    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            close = did_you_mean(name, self.names())
            plugin = ("; if a plugin provides it, load it with --plugin FILE_OR_MODULE"
                      if not close and self.entry_point_group else "")
            raise ConfigError(
                f"unknown {self.kind} {name!r}{close}; run 'sparsebench list {self.kind}s' to see the "
                f"choices{plugin}") from None

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._entries[n]) for n in self.names()]


def coerce_value(label: str, value: object, default: object) -> object:
    """Coerce a TOML/JSON value to the type of ``default``; ConfigError naming ``label`` if it cannot.

    ints are accepted where floats are expected, lists where tuples are expected; ``None`` defaults
    accept anything JSON-serialisable, dict defaults accept tables.
    """
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{label} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string, got {value!r}")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{label} must be a list, got {value!r}")
        if default:
            return tuple(coerce_value(label, v, default[0]) for v in value)
        return tuple(value)
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{label} must be a table (mapping), got {value!r}")
        return dict(value)
    return value


def build_config(cls: type, args: dict | None, label: str):
    """Instantiate the dataclass ``cls`` from user ``args`` with type checks and did-you-mean.

    Every field must have a default (hyperparameters are optional with documented defaults).  After
    construction ``obj.validate()`` is called when it exists, so range checks live with the class.
    """
    import dataclasses

    args = dict(args or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in args.items():
        if key not in fields:
            hint = did_you_mean(key, list(fields))
            valid = ", ".join(fields) or "none"
            raise ConfigError(f"{label} has no hyperparameter {key!r}{hint}; valid: {valid}")
        f = fields[key]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        values[key] = coerce_value(f"{label} hyperparameter {key}", value, default)
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{label} could not be configured: {exc}") from None
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def config_dict(obj: object) -> dict:
    """The dataclass fields of ``obj`` as JSON-friendly values (tuples become lists)."""
    import dataclasses

    def plain(v: object) -> object:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}  # type: ignore[arg-type]
