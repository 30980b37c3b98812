"""Import every module of a package and report each one whose import changed another module's globals.

`python -m tests.support.import_watch PACKAGE [PATH]` prints a JSON list of
{"importing", "changed", "name"}: while `importing` ran, the module-level name `name` of `changed`
was bound, rebound, or the list/dict/set it holds grew or shrank — a module registering itself into
another's global (JOBS.append, REGISTRARS[...] = …, other.FACTORY = …). The import system's own
binding of a submodule on its parent package is not a change. Run in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import importlib.abc
import json
import pkgutil
import sys
import types


def _fingerprint(value):
    """What a shallow change alters: the object, and for a container the objects it holds."""
    if isinstance(value, (list, tuple)):
        return ("seq", id(value), tuple(id(v) for v in value))
    if isinstance(value, dict):
        return ("map", id(value), tuple((id(k), id(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", id(value), frozenset(id(v) for v in value))
    return ("obj", id(value))


class Watcher(importlib.abc.MetaPathFinder):
    """Wraps the loader of every module of `package` to compare the others' globals around its execution."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.found: list[dict] = []
        self.known: dict[str, dict] = {}

    def ours(self, name: str) -> bool:
        return name == self.package or name.startswith(self.package + ".")

    def find_spec(self, name, path, target=None):
        if not self.ours(name):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, self)
                return spec
        return None

    def done(self, importing: str) -> None:
        """`importing` has run: any other module that had run before and changed since was changed by it.

        A module's baseline is taken when its own code has run, so a module first loaded inside another's
        import is watched from then on (its own later lines are its own business)."""
        for name, names in self.known.items():
            if name == importing:
                continue
            mod = sys.modules.get(name)
            now = {k: _fingerprint(v) for k, v in list(vars(mod).items())} if mod is not None else {}
            for key in set(names) | set(now):
                if key in now and _is_child(name, key, getattr(mod, key)):
                    continue  # the import system binds pkg.sub on pkg
                if names.get(key) != now.get(key):
                    self.found.append({"importing": importing, "changed": name, "name": key})
            self.known[name] = now
        mod = sys.modules.get(importing)
        self.known[importing] = {k: _fingerprint(v) for k, v in vars(mod).items()} if mod is not None else {}


def _is_child(parent: str, key: str, value) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__ == f"{parent}.{key}"


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, watcher: Watcher) -> None:
        self.loader, self.watcher = loader, watcher

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # as if unwatched (_impl.kind reads it)
        self.loader.exec_module(module)
        self.watcher.done(module.__name__)

    def __getattr__(self, name):  # get_resource_reader, get_source…: the real loader's
        return getattr(self.loader, name)


def main(package: str, path: str | None = None) -> list[dict]:
    if path:
        sys.path.insert(0, path)
    watcher = Watcher(package)
    sys.meta_path.insert(0, watcher)
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # running it would run the command
            importlib.import_module(info.name)
    return watcher.found


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
