"""quarry-temporal: Quarry runs as Temporal activities (CONTRACT_INTEGRATION §5).

Importing this package imports no Temporal or runtime module; the submodules do.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
