"""The plugin host: one pluggy PluginManager fed by the "vadx" entry-point group.

First-party detectors are declared in that group too, so they load exactly like a third party's.
Plugins load lazily, on the first question about detectors, so ``import vadx`` stays fast and a
broken plugin cannot break it. Environment variables (comma-separated entry-point or
distribution names):

- ``VADX_LOAD_PLUGINS``: load only these (set but empty: load none).
- ``VADX_DISABLE_PLUGINS``: never load these.

A plugin that fails to import, implements an unknown hook, or raises while registering is
skipped with a :class:`vadx.errors.PluginWarning` and reported by :func:`list_plugins` (and
``vadx plugins``); the other plugins are unaffected. "Raises" means any exception but
``KeyboardInterrupt``: a plugin calling ``sys.exit()`` (``SystemExit``) at import or in a hook
is reported as FAILED, it does not end the host. Also reported, never silently mis-registered:
a registration hook declared as a wrapper (``hookwrapper=True`` / ``wrapper=True``: vadx calls
each plugin's registration hooks directly, so a wrapper would register nothing), and one
module declared under two entry points (it is registered once, under the first name).

Two hooks (:mod:`vadx.hookspecs`): ``vadx_register_detectors`` (anomaly detectors,
:func:`detectors`) and ``vadx_register_object_detectors`` (object detectors for scene context,
:func:`object_detectors`). A plugin may implement either or both; registration is all or nothing
per plugin: if one hook raises, nothing of that plugin stays registered.

vadx's own object detector (``darknet``) is the first-party plugin ``vadx_darknet``, declared in the
same entry-point group (``darknet``, distribution ``vadx``) like the first-party detector plugins.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field

import pluggy

from vadx import hookspecs, model_file
from vadx.detector import Detector
from vadx.errors import PluginWarning
from vadx.objects import ObjectDetector

ENTRY_POINT_GROUP = "vadx"
_DETECTOR_NAME = model_file.DETECTOR_NAME  # what a model file may name

pm = pluggy.PluginManager("vadx")
pm.add_hookspecs(hookspecs)


@dataclass
class PluginInfo:
    """One plugin as `vadx plugins` shows it."""

    name: str
    distribution: str | None
    version: str | None
    detectors: list[str] = field(default_factory=list)
    error: str | None = None
    object_detectors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DetectorEntry:
    """A registered detector class and the plugin that registered it."""

    cls: type[Detector]
    plugin: str
    distribution: str | None
    version: str | None


@dataclass(frozen=True)
class ObjectDetectorEntry:
    """A registered object detector class and the plugin that registered it."""

    cls: type
    plugin: str
    distribution: str | None
    version: str | None


_plugins: dict[str, PluginInfo] = {}
_detectors: dict[str, DetectorEntry] = {}
_object_detectors: dict[str, ObjectDetectorEntry] = {}
_loaded = False


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _fail(info: PluginInfo, what: str, exc: BaseException) -> None:
    info.error = f"{what}: {type(exc).__name__}: {exc}"
    warnings.warn(
        f"vadx plugin {info.name!r} ({info.distribution or '?'} {info.version or '?'}) "
        f"was skipped: {info.error}",
        PluginWarning,
        stacklevel=3,
    )


def load_plugins() -> None:
    """Load the plugins of the entry-point group "vadx" (once; see :func:`reload`)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allow, deny = _env_names("VADX_LOAD_PLUGINS"), _env_names("VADX_DISABLE_PLUGINS") or set()
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        names = {ep.name, dist} - {None}
        if (allow is not None and not names & allow) or names & deny:
            continue
        info = PluginInfo(ep.name, dist, version)
        if ep.name in _plugins:
            other = _plugins[ep.name]
            _fail(info, "load", ValueError(
                f"entry point name {ep.name!r} is already used by {other.distribution}"))
            _plugins[f"{ep.name} ({dist})"] = info
            continue
        _plugins[ep.name] = info
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a plugin must never end the host, not even by sys.exit()
            _fail(info, "import", e)
            continue
        _register_module(info, module)


def _register_module(info: PluginInfo, module: object) -> None:
    owner = pm.get_name(module)
    if owner is not None:  # pluggy refuses it too, but unregistering on that error would drop the owner
        _fail(info, "load", ValueError(
            f"module {getattr(module, '__name__', module)!r} is already loaded as plugin "
            f"{owner!r} ({_plugins[owner].distribution if owner in _plugins else '?'}); one "
            f"module can be one plugin only, under one entry point"))
        return
    try:
        pm.register(module, name=info.name)
        pm.check_pending()  # hooks nobody specified: typos like vadx_register_detector
        wrappers = [impl for caller in pm.get_hookcallers(module) or []
                    for impl in caller.get_hookimpls()
                    if impl.plugin is module and (impl.hookwrapper or getattr(impl, "wrapper", False))]
        if wrappers:
            raise TypeError(f"{wrappers[0].function.__name__} is declared as a wrapper hook "
                            f"(hookwrapper/wrapper=True); vadx calls registration hooks directly, "
                            f"so declare it with plain @vadx.hookimpl")
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        if pm.is_registered(module):
            pm.unregister(module)
        _fail(info, "hook validation", e)
        return
    _register_classes_of(info)


def _register_classes_of(info: PluginInfo) -> None:
    """Call the plugin's two registration hooks; on any failure undo both (all or nothing)."""
    plugin = pm.get_plugin(info.name)
    done: list[tuple[dict, str]] = []

    def registrar(registry: dict, base: type, shown: str, what: str, example: str, entry_cls: type):
        def register(cls: type) -> None:
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"register() takes a {shown} subclass, got {cls!r}")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not _DETECTOR_NAME.match(name):
                raise ValueError(
                    f"{cls.__qualname__}.name must be a lower-case name like {example!r}, got {name!r}")
            if name in registry:
                raise ValueError(f"{what} name {name!r} is already registered by plugin "
                                 f"{registry[name].plugin!r}")
            registry[name] = entry_cls(cls, info.name, info.distribution, info.version)
            done.append((registry, name))
            if registry is _detectors:  # what a model file records (the contract needs no host)
                cls._vadx_plugin = {"name": info.name, "distribution": info.distribution,
                                    "version": info.version}
        return register

    hooks = [
        (pm.hook.vadx_register_detectors,
         registrar(_detectors, Detector, "vadx.Detector", "detector", "fcn-cascade", DetectorEntry)),
        (pm.hook.vadx_register_object_detectors,
         registrar(_object_detectors, ObjectDetector, "vadx.objects.ObjectDetector", "object detector", "darknet",
                   ObjectDetectorEntry)),
    ]
    for hook, register in hooks:
        for impl in hook.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # SystemExit included: reported, the host goes on
                for registry, name in done:  # all or nothing per plugin
                    if registry is _detectors:
                        registry[name].cls._vadx_plugin = None
                    del registry[name]
                done.clear()
                _fail(info, hook.name, e)
                break
        if info.error:
            break
    info.detectors = sorted(n for r, n in done if r is _detectors)
    info.object_detectors = sorted(n for r, n in done if r is _object_detectors)


def reload() -> None:
    """Forget every plugin and load them again (after installing one, or changing the env vars)."""
    global _loaded
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name=name)
    _plugins.clear()
    _detectors.clear()
    _object_detectors.clear()
    _loaded = False
    load_plugins()


def list_plugins() -> list[PluginInfo]:
    """Every plugin found, loaded or skipped (``error`` says why), sorted by name."""
    load_plugins()
    return [_plugins[n] for n in sorted(_plugins)]


def detectors() -> dict[str, DetectorEntry]:
    """The registered detectors by name."""
    load_plugins()
    return dict(sorted(_detectors.items()))


def _lookup(found: dict, name: str, what: str, listing: str):
    if name not in found:
        failed = [p.name for p in _plugins.values() if p.error]
        hint = f"; plugins that failed to load: {', '.join(failed)}" if failed else ""
        raise LookupError(f"unknown {what} {name!r}; installed: {', '.join(found) or '(none)'}{hint}. "
                          f"`vadx plugins` lists plugins and {listing}.")
    return found[name]


def get_detector(name: str) -> DetectorEntry:
    """The registry entry of detector ``name``; a LookupError names the installed ones."""
    return _lookup(detectors(), name, "detector", "their detectors")


def object_detectors() -> dict[str, ObjectDetectorEntry]:
    """The registered object detectors by name (hook ``vadx_register_object_detectors``)."""
    load_plugins()
    return dict(sorted(_object_detectors.items()))


def get_object_detector(name: str) -> ObjectDetectorEntry:
    """The registry entry of object detector ``name``; a LookupError names the installed ones."""
    return _lookup(object_detectors(), name, "object detector", "what they provide")


def create_object_detector(name: str, **params) -> ObjectDetector:
    """A new object detector ``name`` (see :func:`object_detectors`) with its parameters."""
    return get_object_detector(name).cls(**params)
