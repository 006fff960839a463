"""Replays what the Azure Functions Python worker does when it indexes an app (v2 model).

Run as a script in a FRESH interpreter (``python worker_replay.py <app root>``): the worker imports
the app once per process, and ``get_functions()`` may be called only once per app. Prints JSON.

Steps, as in azure-functions-python-worker's loader (``index_function_app``) and function
registry (``add_indexed_function``):

1. ``<root>/function_app.py`` must exist (else the worker silently loads nothing);
2. ``importlib.import_module("function_app")`` with the app root first on ``sys.path``;
3. exactly one ``azure.functions.FunctionRegister`` among the module's attributes;
4. ``app.get_functions()``, each function's binding JSON;
5. ``typing.get_type_hints(user_function)``: every parameter bound, every annotation a type the
   binding accepts — for SDK-type (deferred) bindings, the extension's converter must accept it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import typing


def main(root: str) -> dict[str, typing.Any]:
    if not os.path.isfile(os.path.join(root, "function_app.py")):
        raise SystemExit(f"{root}/function_app.py is missing: the worker would index nothing")
    sys.path.insert(0, root)
    os.chdir(root)
    before = set(sys.modules)
    module = importlib.import_module("function_app")

    import azure.functions as func
    from azurefunctions.extensions.base import get_binding_registry

    registers = [n for n in module.__dir__() if isinstance(getattr(module, n, None), func.FunctionRegister)]
    if len(registers) != 1:
        raise SystemExit(f"expected exactly one FunctionRegister, found {registers}")
    app = getattr(module, registers[0])
    registry = get_binding_registry()
    functions = {}
    for fn in app.get_functions():
        user = fn.get_user_function()
        hints = typing.get_type_hints(user)
        bindings = json.loads(fn.get_function_json())["bindings"]
        bound = {b["name"] for b in bindings if b["name"] != "$return"}
        params = set(inspect.signature(user).parameters)
        if params != bound:
            raise SystemExit(f"{fn.get_function_name()}: parameters {params} != bindings {bound}")
        deferred = {}
        for name in params:
            annotation = hints.get(name)
            binding = next(b for b in bindings if b["name"] == name)
            is_sdk_type = (
                registry is not None and isinstance(annotation, type) and registry.check_supported_type(annotation)
            )
            if is_sdk_type:
                converter = registry.get(binding["type"])
                if converter is None or not converter.check_input_type_annotation(annotation):
                    raise SystemExit(f"{fn.get_function_name()}: {annotation} not accepted for {binding['type']}")
            deferred[name] = (
                f"{annotation.__module__}.{annotation.__qualname__}" if is_sdk_type and annotation else None
            )
        functions[fn.get_function_name()] = {"json": json.loads(fn.get_function_json()), "sdk_types": deferred}
    loaded = set(sys.modules) - before
    return {
        "module_file": os.path.relpath(module.__file__ or "", root),
        "registers": registers,
        "functions": functions,
        "heavy_modules": sorted(
            m for m in loaded if m.split(".")[0] in {"numpy", "metaflow", "scipy", "pandas", "matplotlib"}
        ),
        "local_backend_loaded": "localdev.local_backend" in sys.modules,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
