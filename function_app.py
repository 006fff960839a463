"""Azure Functions entry point (Python v2 model): the worker imports this module as ``function_app``.

The code lives in the folder ``function_app/``, which has NO ``__init__.py`` on purpose: a
package ``function_app/__init__.py`` would shadow this file, and the worker, which imports by
module name, would then not find the app here. Setting ``__path__`` below makes this module the
package of that folder, so ``function_app.submission`` and friends import normally.

Import stays light and side-effect free (no numpy, no metaflow, no settings, no I/O): an
exception here makes the worker index zero functions.
"""

from __future__ import annotations

import os

import azure.functions as func

__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "function_app")]

from function_app.blueprint import bp
from function_app.status import bp as status_bp

# Exactly one FunctionApp at module level: the worker refuses zero or several.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
app.register_functions(status_bp)
