"""Opt-in test helpers for Quarry plugins: ``pytest_plugins = ["quarry_core.testing"]`` in a conftest.

That gives the fixtures of :mod:`quarry_core.testing.plugin` (``plugin_host``, ``register_plugin``). The
contract suites live in :mod:`quarry_core.testing.contracts`, fakes in :mod:`quarry_core.testing.fakes` and
Hypothesis strategies in :mod:`quarry_core.testing.strategies`. Importing this package imports nothing heavy;
nothing here auto-loads into unrelated pytest sessions (no ``pytest11`` entry point).
"""

pytest_plugins = ["quarry_core.testing.plugin"]
