"""Every hook a Quarry plugin can implement. This module is the plugin API reference.

Registration hooks take no arguments and ``yield`` frozen records from :mod:`quarry_core.registrations`. The
host collects them, adds the providing distribution, rejects duplicate names when one is selected, and calls
``factory`` lazily, only for the implementation a run selects. Hooks are sync and cheap: import heavy libraries
inside ``factory``, never at module import time. Observer hooks may be sync or ``async``.

A plugin is a module exposed through the ``quarry`` entry-point group::

    # pyproject.toml
    [project.entry-points.quarry]
    my-adapter = "my_adapter.hooks"

    # my_adapter/hooks.py
    from quarry_core import hookimpl
    from quarry_core.registrations import NotificationAdapterPlugin

    @hookimpl
    def quarry_notification_adapters():
        def factory(config):
            from my_adapter.adapter import MyAdapter  # heavy imports here
            return MyAdapter(config)
        yield NotificationAdapterPlugin(name="mine", factory=factory, summary="posts to my service")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from quarry_core.interfaces import RunInfo, RunOutcome
    from quarry_core.registrations import (
        CliCommandPlugin,
        EventSinkPlugin,
        ExecutorPlugin,
        IngestionPolicyPlugin,
        NotificationAdapterPlugin,
        ProxySelectorPlugin,
        ProxyStateStorePlugin,
        StorageBackendPlugin,
    )

__all__ = ["PROJECT_NAME"]

PROJECT_NAME = "quarry"
_hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@_hookspec
def quarry_ingestion_policies() -> Iterable[IngestionPolicyPlugin]:  # type: ignore[empty-body]
    """Register ingestion policies.

    ``factory(config: PolicyConfig, sink: Sink, context: PolicyContext) -> IngestionPolicy``.

    Example::

        @hookimpl
        def quarry_ingestion_policies():
            yield IngestionPolicyPlugin(name="strict", factory=StrictPolicy, summary="commit every event")

    :return: an iterable of :class:`~quarry_core.registrations.IngestionPolicyPlugin`.
    """


@_hookspec
def quarry_storage_backends() -> Iterable[StorageBackendPlugin]:  # type: ignore[empty-body]
    """Register storage backends.

    ``factory(config: StorageConfig) -> StorageBackend``.

    Example::

        @hookimpl
        def quarry_storage_backends():
            yield StorageBackendPlugin(name="lode", aliases=("fs",), factory=make_backend)

    :return: an iterable of :class:`~quarry_core.registrations.StorageBackendPlugin`.
    """


@_hookspec
def quarry_notification_adapters() -> Iterable[NotificationAdapterPlugin]:  # type: ignore[empty-body]
    """Register notification adapters, called once after a run is persisted.

    ``factory(config: AdapterConfig) -> NotificationAdapter``.

    Example::

        @hookimpl
        def quarry_notification_adapters():
            yield NotificationAdapterPlugin(name="webhook", factory=WebhookAdapter)

    :return: an iterable of :class:`~quarry_core.registrations.NotificationAdapterPlugin`.
    """


@_hookspec
def quarry_event_sinks() -> Iterable[EventSinkPlugin]:  # type: ignore[empty-body]
    """Register event sinks, fed every batch a policy writes.

    ``factory(config: EventSinkConfig) -> EventSink``.

    Example::

        @hookimpl
        def quarry_event_sinks():
            yield EventSinkPlugin(name="redis", factory=RedisStreamSink)

    :return: an iterable of :class:`~quarry_core.registrations.EventSinkPlugin`.
    """


@_hookspec
def quarry_proxy_selectors() -> Iterable[ProxySelectorPlugin]:  # type: ignore[empty-body]
    """Register proxy selection strategies.

    ``factory() -> ProxyStrategy``.

    Example::

        @hookimpl
        def quarry_proxy_selectors():
            yield ProxySelectorPlugin(name="round_robin", factory=RoundRobin)

    :return: an iterable of :class:`~quarry_core.registrations.ProxySelectorPlugin`.
    """


@_hookspec
def quarry_proxy_state_stores() -> Iterable[ProxyStateStorePlugin]:  # type: ignore[empty-body]
    """Register proxy selection state stores.

    ``factory(config: StateStoreConfig) -> ProxyStateStore``.

    Example::

        @hookimpl
        def quarry_proxy_state_stores():
            yield ProxyStateStorePlugin(name="file", factory=FileStateStore)

    :return: an iterable of :class:`~quarry_core.registrations.ProxyStateStorePlugin`.
    """


@_hookspec
def quarry_executors() -> Iterable[ExecutorPlugin]:  # type: ignore[empty-body]
    """Register executors.

    ``factory(config: ExecutorConfig) -> ExecutorLauncher``.

    Example::

        @hookimpl
        def quarry_executors():
            yield ExecutorPlugin(name="playwright", factory=PlaywrightLauncher)

    :return: an iterable of :class:`~quarry_core.registrations.ExecutorPlugin`.
    """


@_hookspec
def quarry_cli_commands() -> Iterable[CliCommandPlugin]:  # type: ignore[empty-body]
    """Register command groups mounted under ``quarry <name>``.

    ``factory() -> typer.Typer``.

    Example::

        @hookimpl
        def quarry_cli_commands():
            yield CliCommandPlugin(name="temporal", factory=lambda: temporal_app)

    :return: an iterable of :class:`~quarry_core.registrations.CliCommandPlugin`.
    """


@_hookspec
def quarry_run_started(run: RunInfo) -> None:
    """Observe the start of every run, children included. Sync or async (bounded to 5 s).

    Exceptions are logged as ``Warning: plugin <name> hook quarry_run_started failed: <error>`` and never
    affect the run.

    Example::

        @hookimpl
        def quarry_run_started(run):
            print("started", run.run_id)

    :param run: identity of the run.
    :return: ``None``.
    """


@_hookspec
def quarry_run_finished(run: RunInfo, result: RunOutcome) -> None:
    """Observe the end of every run after its records are written. Sync or async (bounded to 5 s).

    Example::

        @hookimpl
        def quarry_run_finished(run, result):
            print(run.run_id, result.outcome, result.exit_code)

    :param run: identity of the run.
    :param result: outcome, message, exit code and counts.
    :return: ``None``.
    """
