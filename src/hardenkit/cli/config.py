"""``hardenkit config [APP]``: the effective configuration of ``harden()``, secrets redacted.

``APP`` is ``module:attribute`` as uvicorn takes it (the current directory is
importable). When the app was hardened at import time (``app = hk.harden(...)``
or a Kit installed/wrapped), the kit it carries is shown, with the options its
code gave; otherwise what ``harden(app)`` would install with the environment
(and ``--env-file``). Each option shows where its value comes from: the
component's default, the code (``explicit``), or the variable that set it.
Values of secret-looking options and credentials in URIs are redacted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from .._core.kit import Kit, _KitRoot, harden_kit
from ..errors import ConfigurationError

_REDACTED = "[REDACTED]"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hardenkit config",
        description="Print the effective configuration of harden() for an app (secrets redacted): "
        "each component, outermost first, with every option and where its value comes from.",
    )
    parser.add_argument(
        "app", nargs="?", metavar="MODULE:ATTRIBUTE", help="the app, as uvicorn takes it (e.g. main:app)"
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="also read HARDENKIT_* lines from this .env file (environment wins)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        kit, origin = _kit_for(args.app, args.env_file)
        layers = _layers(kit)
    except ConfigurationError as exc:
        print(f"hardenkit config: {exc}", file=sys.stderr)
        return 2
    except (ImportError, AttributeError) as exc:
        print(f"hardenkit config: cannot load {args.app!r}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"app": args.app, "origin": origin, "layers": layers}, indent=2, default=str))
        return 0
    print(f"hardenkit configuration ({origin}), outermost first:")
    for layer in layers:
        print(f"  {layer['place']:<12} {layer['class']}")
        for name, option in layer["options"].items():
            print(f"      {name} = {option['value']}    [{option['source']}]")
    print("  app")
    return 0


def _kit_for(target: str | None, env_file: str | None) -> tuple[Kit, str]:
    if target is not None:
        app = _import(target)
        kit = _installed_kit(app)
        if kit is not None:
            return kit, f"the kit installed on {target}"
    return harden_kit(env=True, env_file=env_file), "what harden() installs with this environment"


def _import(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{target!r}: write MODULE:ATTRIBUTE, for example main:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _installed_kit(app: Any) -> Kit | None:
    """The kit an app was hardened with: a wrapped app's root, or the root in a Starlette app's middleware."""
    if isinstance(app, _KitRoot):
        return app.kit
    for middleware in getattr(app, "user_middleware", None) or ():
        if getattr(middleware, "cls", None) is _KitRoot:
            kit = getattr(middleware, "kwargs", {}).get("kit")
            if isinstance(kit, Kit):
                return kit
    return None


def _layers(kit: Kit) -> list[dict[str, Any]]:
    from ..logs import Redactor, is_secret_key

    redactor = Redactor(mode="mask")
    layers: list[dict[str, Any]] = []
    for place, name, options in kit.effective_options():
        shown: dict[str, dict[str, str]] = {}
        for option, (value, source) in options.items():
            text = _REDACTED if is_secret_key(option) else redactor.redact(_show(value))
            shown[option] = {"value": text, "source": source}
        layers.append({"place": place, "class": name, "options": shown})
    return layers


def _show(value: Any) -> str:
    """A value as its repr, except callables, shown by name (a repr may carry a memory address)."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return repr(value)
