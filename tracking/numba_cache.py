"""Guard against stale numba caches across modules.

numba invalidates a cached kernel only when its own source file changes, not when
a kernel it calls from another module does (numba issue #1833; documented under
"Cache invalidation" in numba's JIT guide): after an upgrade that touched only
``kernels.py``, ``imm.update_track`` would still run the old inlined update.  So
the package keeps a digest of all its kernel sources next to numba's in-tree
cache and drops the cache when the digest changes.  (A read-only install where
numba caches elsewhere is left alone.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["drop_stale_cache"]


def drop_stale_cache(package_dir: Path, modules: tuple[str, ...]) -> bool:
    """Delete ``package_dir/__pycache__/*.nbi|*.nbc`` if the modules' sources changed since
    the last call; returns whether it did.  Call before any kernel runs."""
    digest = hashlib.sha256(b"".join((package_dir / m).read_bytes() for m in modules)).hexdigest()
    cache = package_dir / "__pycache__"
    stamp = cache / "numba-sources.sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    for path in (*cache.glob("*.nbi"), *cache.glob("*.nbc")):
        path.unlink(missing_ok=True)
    try:
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass
    return True
