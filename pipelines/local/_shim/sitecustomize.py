"""Imported at start-up by every processing-step subprocess of the local runtime.

The code bundle mounted at /opt/ml/processing/code carries only part of the `pipelines`
package (contracts, settings, clients...). Locally, `clients.client()` returns the local
stand-ins from `pipelines.local`, which live in the project, so the project's `pipelines`
folder is added to the bundle package's search path. The bundle's own files still win.

FORECAST_LOCAL_PRELOAD (comma-separated module names) is imported afterwards; tests use it
to refuse non-loopback connections inside step subprocesses.
"""
import importlib
import os

_root = os.environ.get("FORECAST_LOCAL_PROJECT_ROOT")
if _root:
    try:
        import pipelines as _pipelines

        _extra = os.path.join(_root, "pipelines")
        if _extra not in list(_pipelines.__path__):
            _pipelines.__path__.append(_extra)
    except ImportError:
        pass

for _name in filter(None, (os.environ.get("FORECAST_LOCAL_PRELOAD") or "").split(",")):
    importlib.import_module(_name.strip())
