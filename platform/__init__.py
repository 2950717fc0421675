"""Study platform package. Also the standard library's `platform` module, which it shadows.

Run from the repository root, `platform/` hides the standard library module of the
same name, and torch, Ray and others call `platform.system()` and friends. So this file
loads the real `platform.py` and re-exports its names; keep it to exactly that.
"""

import importlib.util as _importlib_util
import os as _os
import sysconfig as _sysconfig

_spec = _importlib_util.spec_from_file_location(
    "_stdlib_platform", _os.path.join(_sysconfig.get_paths()["stdlib"], "platform.py")
)
assert _spec is not None and _spec.loader is not None
_stdlib_platform = _importlib_util.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib_platform)
globals().update({k: v for k, v in vars(_stdlib_platform).items() if not k.startswith("__")})
