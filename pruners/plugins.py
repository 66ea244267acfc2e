"""Plugins: pruners (and reparams) that live outside this repository (docs/plugins.md).

A plugin is Python code that registers classes with the ordinary decorators
(``@register_pruner("name")`` on a ``@dataclass`` subclass of :class:`pruners.Pruner`,
``@register_reparam`` for reparams).  It reaches sparsebench in one of three ways:

* **a file**: ``sparsebench run grid.toml --plugin path/to/my_pruner.py``;
* **a module** on ``sys.path``: ``--plugin mypackage.pruners``;
* **an entry point** of an installed distribution, group ``sparsebench.pruners`` (or
  ``sparsebench.reparams``), e.g. in its ``pyproject.toml``::

      [project.entry-points."sparsebench.pruners"]
      force = "sparsebench_force.force:FORCE"

  The value may name a class (registered under the entry point's name unless its decorator
  already registered it) or a module (whose decorators register its classes).

How worker processes see plugins.  :func:`load_plugins` (called by the CLI for ``--plugin``) loads
each target in the driver and records it in the environment variable ``SPARSEBENCH_PLUGINS``
(``os.pathsep``-separated; absolute paths for files).  ``Registry.discover()`` — run by every
registry lookup — loads the targets listed there and the installed entry points, so worker
processes started by any executor (spawned local workers, Ray workers, Slurm jobs), which inherit
the environment, register the same pruners before they re-validate a spec.

Loading is idempotent (a file is keyed by its absolute path, a module by its name: loading it twice
registers once) and transactional: a plugin that fails halfway — an import error, a name clash, a
class that breaks the interface — registers nothing, and the error is one :class:`ConfigError` line
naming the plugin and the fault (for import errors, the plugin's own error line).

Trust model: a plugin is ordinary Python code that runs with your rights, in the CLI and in every
worker, as soon as it is loaded.  Load only plugins you would run as a script.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator

from pruners.registry import DISCOVERERS, REGISTRIES, ConfigError, Registry, registering_as

ENV_VAR = "SPARSEBENCH_PLUGINS"
_MODULE_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass
class Plugin:
    """One loaded plugin.

    Attributes:
        key: what identifies it: the absolute path of a file, the name of a module, or
            ``entry point <value>``.
        label: how messages name it (the target as the user wrote it).
        kind: ``file``, ``module`` or ``entry point``.
        module: the imported module (``None`` only while loading).
        registered: registry kind (``pruner``, ``reparam``, …) → names this plugin registered.
        distribution: ``name version`` of the installed distribution (entry points only).
    """

    key: str
    label: str
    kind: str
    module: ModuleType | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    distribution: str = ""

    @property
    def pruners(self) -> list[str]:
        return list(self.registered.get("pruner", []))

    @property
    def reparams(self) -> list[str]:
        return list(self.registered.get("reparam", []))

    @property
    def schedules(self) -> list[str]:
        return list(self.registered.get("schedule", []))

    @property
    def env_entry(self) -> str | None:
        """How this plugin is written into ``$SPARSEBENCH_PLUGINS`` (entry points need no entry)."""
        return self.key if self.kind in ("file", "module") else None


_LOADED: dict[str, Plugin] = {}
_DISCOVERING = False


# ------------------------------------------------------------------------------------------------
# resolving targets
def resolve(target: str | os.PathLike) -> tuple[str, str]:
    """``(key, kind)`` of a ``--plugin`` target: an existing ``.py`` file or a dotted module name."""
    text = str(target).strip()
    if not text:
        raise ConfigError("plugin target is empty; pass a path to a .py file or an importable package.module")
    looks_like_path = text.endswith(".py") or "/" in text or os.sep in text or Path(text).exists()
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.exists():
            raise ConfigError(f"plugin {text!r} does not exist; pass the path of an existing .py file or an "
                              "importable package.module")
        if not path.is_file() or path.suffix != ".py":
            raise ConfigError(f"plugin {text!r} is not a .py file; pass a Python source file or a module name "
                              "such as mypackage.pruners")
        return str(path.resolve()), "file"
    if not _MODULE_RE.fullmatch(text):
        raise ConfigError(f"plugin {text!r} is neither an existing .py file nor a module name; pass e.g. "
                          "./my_pruner.py or mypackage.pruners")
    return text, "module"


def _file_module_name(path: str) -> str:
    stem = re.sub(r"\W", "_", Path(path).stem) or "plugin"
    return f"sparsebench_plugin_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:10]}"


def _error_line(exc: BaseException, files: Iterable[str] = ()) -> str:
    """The plugin's own error line: ``Type: message (file.py, line N)``, innermost frame in the plugin."""
    msg = (str(exc).strip().splitlines() or [""])[0]
    head = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} ({Path(exc.filename).name}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    files = {str(Path(f).resolve()) for f in files}
    own = [f for f in frames if files and str(Path(f.filename).resolve()) in files]
    pick = own[-1] if own else (frames[-1] if frames else None)
    if pick is None:
        return head
    return f"{head} ({Path(pick.filename).name}, line {pick.lineno})"


# ------------------------------------------------------------------------------------------------
# the registration transaction
def _snapshot() -> dict[int, dict[str, Any]]:
    return {id(r): dict(r._entries) for r in REGISTRIES}


def _rollback(before: dict[int, dict[str, Any]]) -> None:
    for r in REGISTRIES:
        old = before.get(id(r), {})
        for name in [n for n in r._entries if n not in old]:
            r.unregister(name)


def _new_names(before: dict[int, dict[str, Any]], module_names: Iterable[str], origin: str) -> dict[str, list[str]]:
    """Names registered since ``before``, plus entries defined in the plugin's modules (a module that
    was imported earlier registered its classes then; they are attributed to the plugin now)."""
    prefixes = tuple(module_names)
    out: dict[str, list[str]] = {}
    for r in REGISTRIES:
        old = before.get(id(r), {})
        names = []
        for name, obj in r._entries.items():
            mod = getattr(obj, "__module__", "") or ""
            ours = any(mod == p or mod.startswith(p + ".") for p in prefixes)
            if name not in old or ours:
                names.append(name)
                if ours and r._origins.get(name) == "built-in":
                    r._origins[name] = origin
        if names:
            out.setdefault(r.kind, []).extend(names)
    return out


def _drop_modules(names: Iterable[str]) -> None:
    for name in list(sys.modules):
        if any(name == n or name.startswith(n + ".") for n in names):
            sys.modules.pop(name, None)


def _imported_elsewhere(path: str) -> ModuleType | None:
    """A module already imported from the file ``path`` under another name (e.g. by a worker bootstrap)."""
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f or getattr(mod, "__name__", "") == _file_module_name(path):
            continue
        try:
            if str(Path(f).resolve()) == path:
                return mod
        except (OSError, ValueError):
            continue
    return None


def _exec_file(path: str) -> ModuleType:
    name = _file_module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - spec_from_file_location of a .py file
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def load_plugin(target: str | os.PathLike) -> Plugin:
    """Import one ``--plugin`` target and return what it registered (idempotent, all or nothing).

    Raises:
        ConfigError: one line naming the plugin and the fault — a missing file, an import error
            (with the plugin's own error line), a name already registered (by a built-in or another
            plugin), no pruner or reparam registered, or a class that breaks the interface.
    """
    key, kind = resolve(target)
    if key in _LOADED:
        return _LOADED[key]
    label = str(target)
    plugin = Plugin(key=key, label=label, kind=kind)
    origin = f"plugin {label}"
    before = _snapshot()
    new_modules_before = set(sys.modules)
    module_name = _file_module_name(key) if kind == "file" else key
    elsewhere = _imported_elsewhere(key) if kind == "file" else None
    if elsewhere is not None:  # the file was already imported under another name: adopt, do not exec twice
        module_name = elsewhere.__name__
    try:
        with registering_as(origin):
            if elsewhere is not None:
                plugin.module = elsewhere
            else:
                plugin.module = _exec_file(key) if kind == "file" else importlib.import_module(key)
        plugin.registered = _new_names(before, [module_name], origin)
        if not any(plugin.registered.values()):
            raise ConfigError("registers no pruner, schedule or reparam; decorate a dataclass subclass of "
                              "pruners.Pruner with @register_pruner(\"name\")")
        for name in plugin.pruners:
            check_pruner_class(name)
    except ConfigError as exc:
        _undo(before, new_modules_before, module_name, kind)
        raise ConfigError(f"plugin {label!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        _undo(before, new_modules_before, module_name, kind)
        files = [key] if kind == "file" else _module_files(module_name)
        raise ConfigError(f"plugin {label!r} failed to import: {_error_line(exc, files)}; fix the plugin "
                          "and try again") from None
    _LOADED[key] = plugin
    return plugin


def _module_files(module_name: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin:
        return []
    if spec.submodule_search_locations:
        return [str(p) for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.py")]
    return [spec.origin]


def _undo(before: dict, modules_before: set[str], module_name: str, kind: str) -> None:
    _rollback(before)
    if kind == "file":
        if module_name.startswith("sparsebench_plugin_"):
            _drop_modules([module_name])
    else:  # the plugin's module and its new parent packages, never third-party modules it imported
        parts = module_name.split(".")
        own = {".".join(parts[: i + 1]) for i in range(len(parts))}
        _drop_modules([m for m in own if m not in modules_before])
        sys.modules.pop(module_name, None)


def unload_plugin(key_or_target: str) -> None:
    """Forget a loaded plugin: unregister its names, drop its module and its ``$SPARSEBENCH_PLUGINS`` entry."""
    key = key_or_target if key_or_target in _LOADED else resolve(key_or_target)[0]
    plugin = _LOADED.pop(key, None)
    if plugin is None:
        return
    targets = [t for t in env_targets() if t != plugin.env_entry]
    if targets:
        os.environ[ENV_VAR] = os.pathsep.join(targets)
    else:
        os.environ.pop(ENV_VAR, None)
    for r in REGISTRIES:
        for name in plugin.registered.get(r.kind, []):
            r.unregister(name)
    if plugin.kind == "file":
        _drop_modules([_file_module_name(plugin.key)])
    elif plugin.kind == "module":
        _drop_modules([plugin.key])


def loaded_plugins() -> list[Plugin]:
    return list(_LOADED.values())


def plugin_of(pruner: str) -> Plugin | None:
    """The loaded plugin that registered ``pruner``, or None (built-in or unknown)."""
    for p in _LOADED.values():
        if pruner in p.pruners:
            return p
    return None


# ------------------------------------------------------------------------------------------------
# the environment variable (so workers load the same plugins) and discovery
def env_targets() -> list[str]:
    raw = os.environ.get(ENV_VAR, "")
    return [t for t in (x.strip() for x in raw.split(os.pathsep)) if t]


def export(plugins: Iterable[Plugin]) -> None:
    """Add the plugins to ``$SPARSEBENCH_PLUGINS`` (kept in order, no duplicates)."""
    targets = env_targets()
    for p in plugins:
        if p.env_entry and p.env_entry not in targets:
            targets.append(p.env_entry)
    if targets:
        os.environ[ENV_VAR] = os.pathsep.join(targets)


def load_plugins(targets: Iterable[str | os.PathLike] | None, *, export_env: bool = True) -> list[Plugin]:
    """Load every target (``--plugin``; files and modules) and record them in ``$SPARSEBENCH_PLUGINS``.

    All or nothing: if one target fails, the ones loaded by this call are unloaded again.
    """
    loaded: list[Plugin] = []
    fresh: list[str] = []
    try:
        for t in targets or []:
            key = resolve(t)[0]
            was_loaded = key in _LOADED
            plugin = load_plugin(t)
            if not was_loaded:
                fresh.append(plugin.key)
            loaded.append(plugin)
    except ConfigError:
        for key in fresh:
            unload_plugin(key)
        raise
    if export_env:
        export(loaded)
    return loaded


def load_env_plugins() -> list[Plugin]:
    """Load the targets listed in ``$SPARSEBENCH_PLUGINS`` that are not loaded yet."""
    return [load_plugin(t) for t in env_targets()]


def _load_entry_point(registry: Registry, ep: metadata.EntryPoint) -> None:
    dist = getattr(ep, "dist", None)
    dist_label = f"{dist.metadata['Name']} {dist.version}" if dist is not None else ""
    key = f"entry point {ep.group}:{ep.name}"
    if key in _LOADED:
        return
    origin = f"entry point {ep.value}" + (f" ({dist_label})" if dist_label else "")
    before = _snapshot()
    modules_before = set(sys.modules)
    module_name = ep.value.split(":")[0].strip()
    plugin = Plugin(key=key, label=f"{ep.name} ({ep.value})", kind="entry point", distribution=dist_label)
    try:
        with registering_as(origin):
            obj = ep.load()
            if isinstance(obj, type) and not any(v is obj for v in registry._entries.values()):
                registry.add(ep.name, obj, origin=origin)
        plugin.module = sys.modules.get(module_name)
        plugin.registered = _new_names(before, [module_name], origin)
        for name in plugin.pruners:
            check_pruner_class(name)
    except ConfigError as exc:
        _undo(before, modules_before, module_name, "module")
        raise ConfigError(f"installed {registry.kind} plugin {ep.name!r} ({ep.value}"
                          f"{', ' + dist_label if dist_label else ''}): {exc}; fix or uninstall that "
                          "package") from None
    except (Exception, SystemExit) as exc:
        _undo(before, modules_before, module_name, "module")
        raise ConfigError(f"installed {registry.kind} plugin {ep.name!r} ({ep.value}) failed to import: "
                          f"{_error_line(exc, _module_files(module_name))}; fix or uninstall that "
                          "package") from None
    _LOADED[key] = plugin


def discover(registry: Registry) -> None:
    """``Registry.discover``: the ``$SPARSEBENCH_PLUGINS`` targets, then this registry's entry points."""
    global _DISCOVERING
    if _DISCOVERING:  # a plugin that looks a name up while it is being imported
        return
    _DISCOVERING = True
    try:
        load_env_plugins()
        if registry.entry_point_group and not registry._discovered:
            registry._discovered = True
            for ep in metadata.entry_points(group=registry.entry_point_group):
                _load_entry_point(registry, ep)
    finally:
        _DISCOVERING = False


DISCOVERERS.append(discover)


def rescan_entry_points() -> None:
    """Scan the entry points again on the next lookup (after ``pip install`` in a running session)."""
    for r in REGISTRIES:
        r._discovered = False


# ------------------------------------------------------------------------------------------------
# the static interface checks every plugin pruner must pass when it is loaded
def check_pruner_class(name: str) -> None:
    """Check that the pruner registered as ``name`` has the interface; ConfigError naming the fault.

    A dataclass (hyperparameters = fields), constructible from its defaults, ``validate()`` passing on
    them, JSON-serialisable hyperparameters (they are hashed into the run id), metadata strings, and a
    ``scores`` method (or an ``initial_masks`` override for schedules that start from their own masks).
    """
    from pruners.base import PRUNERS, Pruner
    from pruners.registry import config_dict

    cls = PRUNERS._entries[name]
    cname = getattr(cls, "__qualname__", repr(cls))
    if "__dataclass_fields__" not in getattr(cls, "__dict__", {}):
        raise ConfigError(f"pruner {name!r} (class {cname}) is not a dataclass; put @dataclass under "
                          "@register_pruner so its hyperparameters are fields")
    if cls.scores is Pruner.scores and cls.initial_masks is Pruner.initial_masks:
        raise ConfigError(f"pruner {name!r} (class {cname}) has no scores() method; define "
                          "scores(self, model, ctx) returning {parameter name: tensor}, higher = keep")
    for attr in ("description", "paper", "url", "author", "version"):
        if not isinstance(getattr(cls, attr, ""), str):
            raise ConfigError(f"pruner {name!r} (class {cname}) has a non-string {attr} "
                              f"{getattr(cls, attr)!r}; metadata attributes are strings")
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"pruner {name!r} hyperparameter(s) {', '.join(missing)} have no default; give every "
                          "field a default value")
    try:
        obj = cls()
    except Exception as exc:
        raise ConfigError(f"pruner {name!r} cannot be built with its defaults ({_error_line(exc)})") from None
    if hasattr(obj, "validate"):
        obj.validate()
    try:
        json.dumps(config_dict(obj), allow_nan=False)
    except (TypeError, ValueError):
        bad = [k for k, v in config_dict(obj).items() if not _jsonable(v)]
        raise ConfigError(f"pruner {name!r} hyperparameter(s) {', '.join(bad) or '?'} have defaults that are not "
                          "plain JSON values; use int, float, bool, str, lists or tables") from None


def _jsonable(v: object) -> bool:
    try:
        json.dumps(v, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------------------------------------
# metadata recorded with every result of a plugin pruner
def _declared(cls: type, attr: str) -> bool:
    """Whether ``attr`` is set by the class itself or a base other than ``pruners.Pruner``."""
    from pruners.base import Pruner

    return any(attr in k.__dict__ for k in cls.__mro__ if k is not Pruner and k is not object)


def pruner_metadata(name: str) -> dict[str, str]:
    """Name, version, author, description, paper, URL and origin of a registered pruner.

    ``version`` / ``author`` not declared by a plugin class fall back to its installed distribution
    (entry points) or to ``""``; built-ins report the class attributes.
    """
    from pruners.base import PRUNERS

    cls = PRUNERS.get(name)
    origin = PRUNERS.origin(name)
    meta = {"name": name, "version": str(cls.version), "author": str(cls.author),
            "description": str(cls.description), "paper": str(cls.paper), "url": str(cls.url),
            "family": str(cls.family), "origin": origin}
    if origin == "built-in":
        return meta
    dist = _distribution_of(name)
    for attr in ("version", "author"):
        if not _declared(cls, attr):
            meta[attr] = ""
            if dist is not None:
                if attr == "version":
                    meta[attr] = str(dist.version)
                else:
                    meta[attr] = str(dist.metadata.get("Author") or dist.metadata.get("Author-email") or "")
    return meta


def _distribution_of(name: str) -> metadata.Distribution | None:
    for p in _LOADED.values():
        if p.kind == "entry point" and name in p.pruners and p.distribution:
            try:
                return metadata.distribution(p.distribution.rsplit(" ", 1)[0])
            except metadata.PackageNotFoundError:
                return None
    return None


def plugin_extra(name: str) -> dict[str, Any]:
    """``{"plugin": metadata}`` for a pruner that comes from a plugin, ``{}`` for a built-in.

    The runner merges this into the result's ``extra`` column, so the results table, the store
    (rebuildable from run folders) and the leaderboard carry each submission's metadata.
    """
    from pruners.base import PRUNERS

    try:
        if PRUNERS.origin(name) == "built-in":
            return {}
        return {"plugin": pruner_metadata(name)}
    except ConfigError:
        return {}


def annotate(exc: ConfigError) -> ConfigError:
    """Add ``[pruner 'x' comes from plugin y]`` to a grid error that names a plugin pruner."""
    msg = str(exc)
    for p in _LOADED.values():
        for name in p.pruners:
            if f"pruner {name!r}" in msg and "plugin" not in msg:
                return ConfigError(f"{msg} [pruner {name!r} comes from plugin {p.label}]")
    return exc


def iter_plugin_pruners(plugins: Iterable[Plugin]) -> Iterator[tuple[Plugin, str]]:
    for p in plugins:
        for name in p.pruners:
            yield p, name
