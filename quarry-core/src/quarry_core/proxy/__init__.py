"""Proxy pools: model, validation, sticky keys, strategies, state stores and the selector (proxy.md).

The runtime, the CLI and the SDK helpers all use this one implementation. Importing it never imports redis.
"""

from __future__ import annotations

from quarry_core.proxy.errors import ProxyError, ProxyStateStoreError
from quarry_core.proxy.keys import (
    normalize_domain,
    normalize_origin,
    origin_from_url,
    select_request_for_job,
    sticky_key_for,
)
from quarry_core.proxy.model import (
    BUILTIN_STRATEGIES,
    JobProxyRequest,
    ProxyEndpoint,
    ProxyPool,
    RedactedProxy,
    Rotation,
    Selection,
    SelectRequest,
    StickyConfig,
    pool_fingerprint,
    redact_proxy_endpoint,
)
from quarry_core.proxy.selector import ProxySelector
from quarry_core.proxy.stores import (
    FileStateStore,
    MemoryStateStore,
    ProxyStateStore,
    StateStoreConfig,
    create_state_store,
    default_state_path,
)
from quarry_core.proxy.strategies import (
    OperationResult,
    ProxyStrategy,
    RandomStrategy,
    RoundRobinStrategy,
    StickyStrategy,
    StrategyRequest,
    apply_operation,
    builtin_strategies,
    choose,
    rotate,
)
from quarry_core.proxy.validation import (
    check_proxy_sources,
    load_pools,
    parse_legacy_proxy_config,
    selection_input_warnings,
    validate_proxy_endpoint,
    validate_proxy_pool,
    validate_run_proxy,
    validate_state_store_config,
)

__all__ = [
    "BUILTIN_STRATEGIES",
    "FileStateStore",
    "JobProxyRequest",
    "MemoryStateStore",
    "OperationResult",
    "ProxyEndpoint",
    "ProxyError",
    "ProxyPool",
    "ProxySelector",
    "ProxyStateStore",
    "ProxyStateStoreError",
    "ProxyStrategy",
    "RandomStrategy",
    "RedactedProxy",
    "Rotation",
    "RoundRobinStrategy",
    "SelectRequest",
    "Selection",
    "StateStoreConfig",
    "StickyConfig",
    "StickyStrategy",
    "StrategyRequest",
    "apply_operation",
    "builtin_strategies",
    "check_proxy_sources",
    "choose",
    "create_state_store",
    "default_state_path",
    "load_pools",
    "normalize_domain",
    "normalize_origin",
    "origin_from_url",
    "parse_legacy_proxy_config",
    "pool_fingerprint",
    "redact_proxy_endpoint",
    "rotate",
    "select_request_for_job",
    "selection_input_warnings",
    "sticky_key_for",
    "validate_proxy_endpoint",
    "validate_proxy_pool",
    "validate_run_proxy",
    "validate_state_store_config",
]
