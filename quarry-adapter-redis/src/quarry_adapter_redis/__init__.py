"""quarry_adapter_redis"""

__version__ = "0.1.0"

__all__ = ["__version__"]
