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

Detector names are not first come, first served: if two plugins of different distributions
register the same detector name (a third party reusing ``latent-pred``), both stay registered,
a :class:`vadx.errors.PluginWarning` names both distributions, and the plain name is refused by
:func:`get_detector` / ``vadx.create`` with an error naming both, whatever the load order;
``"<distribution>:<name>"`` (``vadx.create("vadx:latent-pred")``) picks one explicitly, and
:func:`vadx.load` picks the one of the distribution a model file records. The same name twice
within one plugin is that plugin's error.

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

    @property
    def qualified_name(self) -> str:
        """``"<distribution>:<name>"`` (the plugin's entry-point name without a distribution),
        which :func:`get_detector` accepts whether or not the name is shared."""
        return f"{self.distribution or self.plugin}:{self.cls.name}"


@dataclass(frozen=True)
class ObjectDetectorEntry:
    """A registered object detector class and the plugin that registered it."""

    cls: type
    plugin: str
    distribution: str | None
    version: str | None


_plugins: dict[str, PluginInfo] = {}
# every plugin's claim on each detector name, in load order; several claims = a clash
_detectors: dict[str, list[DetectorEntry]] = {}
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
    for name, claims in _detectors.items():
        if len(claims) > 1:
            warnings.warn(f"vadx: {_clash(name, claims)}", PluginWarning, stacklevel=2)


def _clash(name: str, claims: list[DetectorEntry]) -> str:
    who = " and ".join(f"{e.distribution or '?'} (plugin {e.plugin!r})" for e in claims)
    picks = " or ".join(repr(e.qualified_name) for e in claims)
    return (f"detector name {name!r} is registered by {len(claims)} distributions, {who}; the "
            f"name alone is refused rather than one of them chosen silently: ask for {picks} "
            f"(vadx.create, vadx fit, vadx info), or uninstall or disable one "
            f"(VADX_DISABLE_PLUGINS)")


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
            entry = entry_cls(cls, info.name, info.distribution, info.version)
            if registry is _detectors:  # other plugins' claims are kept: see _clash
                claims = registry.setdefault(name, [])
                if any(e.plugin == info.name for e in claims):
                    raise ValueError(f"{what} name {name!r} is registered twice by this plugin")
                claims.append(entry)
            elif name in registry:
                raise ValueError(f"{what} name {name!r} is already registered by plugin "
                                 f"{registry[name].plugin!r}")
            else:
                registry[name] = entry
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
                        mine = [c for c in registry[name] if c.plugin == info.name]
                        for c in mine:
                            c.cls._vadx_plugin = None
                        registry[name] = [c for c in registry[name] if c.plugin != info.name]
                        if not registry[name]:
                            del registry[name]
                    else:
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
    """The registered detectors by the name :func:`get_detector` takes: the plain name, or
    ``"<distribution>:<name>"`` for each claim on a name several distributions register."""
    load_plugins()
    out: dict[str, DetectorEntry] = {}
    for name, claims in _detectors.items():
        if len(claims) == 1:
            out[name] = claims[0]
        else:
            out.update((e.qualified_name, e) for e in claims)
    return dict(sorted(out.items()))


def detector_claims(name: str) -> list[DetectorEntry]:
    """Every registration of detector name ``name`` (several: a clash between distributions)."""
    load_plugins()
    return list(_detectors.get(name, []))


def _lookup(found: dict, name: str, what: str, listing: str):
    if name not in found:
        failed = [p.name for p in _plugins.values() if p.error]
        hint = f"; plugins that failed to load: {', '.join(failed)}" if failed else ""
        raise LookupError(f"unknown {what} {name!r}; installed: {', '.join(found) or '(none)'}{hint}. "
                          f"`vadx plugins` lists plugins and {listing}.")
    return found[name]


def get_detector(name: str) -> DetectorEntry:
    """The registry entry of detector ``name``, or of ``"<distribution>:<name>"`` (also a
    plugin's entry-point name before the colon); a LookupError names the installed ones, or,
    for a name several distributions register, both of them and how to pick one."""
    load_plugins()
    if isinstance(name, str) and ":" in name:
        source, _, base = name.partition(":")
        claims = _detectors.get(base, [])
        picked = [e for e in claims if source in (e.distribution, e.plugin)]
        if len(picked) == 1:
            return picked[0]
        if not claims:
            return _lookup(detectors(), base, "detector", "their detectors")
        raise LookupError(f"no detector {base!r} from distribution {source!r}; {base!r} is "
                          f"provided by {', '.join(repr(e.qualified_name) for e in claims)}")
    claims = _detectors.get(name, [])
    if len(claims) > 1:
        raise LookupError(_clash(name, claims))
    return _lookup(detectors(), name, "detector", "their detectors")


def create(name: str, *, preset: str | None = None, **params) -> Detector:
    """A new, unfitted detector ``name`` (or ``"<distribution>:<name>"``) with preset
    ``preset``'s parameters (``Detector.presets()``; None: the defaults) and ``params`` over
    them."""
    return get_detector(name).cls.from_preset(preset, **params)


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


# ---------------------------------------------------------------------------- describing
def _plain(text: str) -> str:
    """Docstring markup out: ``x`` and :func:`x` -> x."""
    import re

    return re.sub(r":[a-z]+:`~?([^`]*)`", r"\1", text).replace("``", "")


def _first_paragraph(doc: str | None, cite: bool = False) -> str:
    """The docstring's first paragraph; with ``cite``, the second too when the first names no
    year (the citation of the paper follows a one-line summary in some modules)."""
    import inspect
    import re

    paras = [" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n") if p.strip()]
    if not paras:
        return ""
    text = paras[0]
    if cite and len(paras) > 1 and not re.search(r"\b(19|20)\d\d\b", text):
        text += " " + paras[1]
    return _plain(text)


def describe_detector(name: str) -> dict:
    """What ``vadx info NAME`` shows, as JSON values: the plugin, the paper (the first paragraph
    of the detector module's docstring), each parameter (type, default, allowed values, one
    line of doc from the class docstrings' ``Args:``) and the presets."""
    import inspect
    import sys

    from vadx import params as _params

    entry = get_detector(name)
    cls = entry.cls
    defaults: dict = {}
    types: dict = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                defaults[p.name] = p.default
                if p.annotation is not p.empty:
                    types[p.name] = p.annotation if isinstance(p.annotation, str) else \
                        getattr(p.annotation, "__name__", str(p.annotation))
    constraints, docs = cls.param_constraints(), _params.param_docs(cls)
    base = set(Detector.param_names())
    parameters = []
    for n in cls.param_names():
        default = defaults.get(n, inspect.Parameter.empty)
        parameters.append({
            "name": n,
            "type": types.get(n),
            "required": default is inspect.Parameter.empty,
            "default": None if default is inspect.Parameter.empty else default,
            "allowed": _params.describe(constraints[n]) if n in constraints else None,
            "doc": _plain(docs.get(n, "")),
            "base_class": n in base,
        })
    presets = {}
    for pname, preset in cls.presets().items():
        same = all(n in defaults and _canonical(cls, n, v) == _canonical(cls, n, defaults[n])
                   for n, v in preset.params.items())
        presets[pname] = {"doc": preset.doc, "params": dict(preset.params),
                          "all_defaults": same}
    module = sys.modules.get(cls.__module__)
    return {
        "name": cls.name,
        "qualified_name": entry.qualified_name,
        "plugin": {"name": entry.plugin, "distribution": entry.distribution,
                   "version": entry.version},
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "paper": _first_paragraph(getattr(module, "__doc__", None), cite=True) or None,
        "summary": _first_paragraph(cls.__doc__) or None,
        "supervised": bool(cls.supervised),
        "fixed_frame_size": bool(cls.fixed_frame_size),
        "parameters": parameters,
        "presets": presets,
    }


def _canonical(cls: type, name: str, value):
    """``value`` as the class stores it (a tuple default and a list preset value compare equal)."""
    from vadx import params as _params

    constraint = cls.param_constraints().get(name)
    if constraint is None:
        return value
    try:
        return _params.check(cls.name, name, value, constraint)
    except _params.ParameterError:
        return value
