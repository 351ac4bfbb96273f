"""Contract suites for notification adapters and event sinks (CONTRACT_INTEGRATION §1, §4), re-exported by
:mod:`quarry_core.testing.contracts`.

A plugin's test package subclasses a suite in a ``Test*`` class, sets ``factory`` to its registration's factory and
implements the few methods that tell the suite where a working target is and how to read back what it received::

    class TestMyAdapterContract(AdapterContract):
        factory = staticmethod(make_my_adapter)

        def make_config(self) -> AdapterConfig: ...          # a target that accepts
        def make_failing_config(self) -> AdapterConfig: ...  # a target that fails; may carry self.secret
        def received(self) -> list[Mapping[str, Any]]: ...    # what the working target got, oldest first

Tests are plain sync functions driving the plugin with ``asyncio.run``; no pytest plugin is needed. Real targets
(an HTTP server on 127.0.0.1, a real broker) are expected, not mocks.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from quarry_core.errors import NotificationError
from quarry_core.interfaces import AdapterConfig, EventSinkConfig
from quarry_core.notify import deliver_notification
from quarry_core.protocol.frames import Event
from quarry_core.testing.fakes import make_event

__all__ = ["AdapterContract", "EventSinkContract"]


def _event() -> dict[str, Any]:
    return {
        "contract_version": "1.0.0",
        "event_type": "run_completed",
        "notification_id": str(uuid.uuid4()),
        "run_id": f"contract-{uuid.uuid4().hex[:8]}",
        "attempt": 1,
        "source": "contract",
        "category": "default",
        "outcome": "success",
        "message": "run completed ✓",
        "exit_code": 0,
        "event_count": 3,
    }


class AdapterContract(abc.ABC):
    """What every notification adapter guarantees: one delivery per publish, failures raise (never swallowed),
    no secret in error messages, ``close`` callable twice."""

    factory: ClassVar[Callable[[AdapterConfig], Any]]
    #: a secret the failing configuration carries (URL password, header value); never in an error message
    secret: ClassVar[str] = "contract-s3cret"

    @abc.abstractmethod
    def make_config(self) -> AdapterConfig:
        """A configuration whose target accepts."""

    @abc.abstractmethod
    def make_failing_config(self) -> AdapterConfig:
        """A configuration whose target fails (it may carry :attr:`secret`)."""

    @abc.abstractmethod
    def received(self) -> list[Mapping[str, Any]]:
        """The events the working target received, oldest first."""

    def test_implements_the_protocol(self) -> None:
        adapter = type(self).factory(self.make_config())
        assert callable(getattr(adapter, "publish", None)) and callable(getattr(adapter, "close", None))
        asyncio.run(adapter.close())

    def test_one_publish_is_one_delivery_of_the_event(self) -> None:
        event = _event()
        asyncio.run(deliver_notification(type(self).factory, self.make_config(), event))
        got = [dict(e) for e in self.received() if e.get("notification_id") == event["notification_id"]]
        assert got == [event], f"expected exactly one delivery of {event['notification_id']}, got {got}"

    def test_failure_raises_without_secrets(self) -> None:
        config = self.make_failing_config()
        try:
            asyncio.run(deliver_notification(type(self).factory, config, _event()))
        except NotificationError as exc:
            text = str(exc)
            assert text.startswith(f"{config.type}: "), text
            assert self.secret not in text, f"secret leaked into {text!r}"
        else:
            raise AssertionError("publishing to a failing target must raise, not be swallowed")

    def test_close_twice(self) -> None:
        adapter = type(self).factory(self.make_config())

        async def go() -> None:
            await adapter.close()
            await adapter.close()

        asyncio.run(go())


class EventSinkContract(abc.ABC):
    """What every event sink guarantees: batches stored in order, an empty batch is a no-op, a failure raises,
    ``label`` names the sink, ``close`` is idempotent."""

    factory: ClassVar[Callable[[EventSinkConfig], Any]]

    @abc.abstractmethod
    def make_config(self) -> EventSinkConfig:
        """A working configuration (with ``source`` and ``category`` in its options)."""

    @abc.abstractmethod
    def make_failing_config(self) -> EventSinkConfig:
        """A configuration whose writes fail."""

    @abc.abstractmethod
    def stored(self, run_id: str) -> list[int]:
        """The ``seq`` of every event stored for ``run_id``, in stored order."""

    def _write(self, config: EventSinkConfig, batches: Sequence[Sequence[Event]]) -> Any:
        sink = type(self).factory(config)

        async def go() -> None:
            try:
                for batch in batches:
                    await sink.write_events(batch)
            finally:
                await sink.close()

        asyncio.run(go())
        return sink

    def test_label_names_the_sink(self) -> None:
        sink = type(self).factory(self.make_config())
        assert isinstance(sink.label, str) and sink.label
        asyncio.run(sink.close())

    def test_batches_are_stored_in_order(self) -> None:
        run_id = f"contract-{uuid.uuid4().hex[:8]}"
        events = [make_event(i, "item" if i % 3 else "log", run_id=run_id) for i in range(1, 11)]
        self._write(self.make_config(), [events[:3], events[3:4], events[4:]])
        assert self.stored(run_id) == list(range(1, 11))

    def test_empty_batch_is_a_no_op(self) -> None:
        run_id = f"contract-{uuid.uuid4().hex[:8]}"
        self._write(self.make_config(), [[]])
        assert self.stored(run_id) == []

    def test_failure_raises(self) -> None:
        try:
            self._write(self.make_failing_config(), [[make_event(1)]])
        except Exception:
            return
        raise AssertionError("a failed write must raise, so mandatory delivery can fail the run")

    def test_close_is_idempotent(self) -> None:
        sink = type(self).factory(self.make_config())

        async def go() -> None:
            await sink.close()
            await sink.close()

        asyncio.run(go())
