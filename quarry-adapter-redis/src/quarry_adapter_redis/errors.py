"""Errors of quarry-adapter-redis, all under :class:`quarry_core.errors.QuarryError`::

QuarryError
├── ConfigError                  (quarry_core) an invalid Redis URL or sink option
├── NotificationError            (quarry_core) the pub/sub adapter failed; retryable ones are
│   └── RetryableNotificationError  (quarry_core.notify)
└── RedisSinkError               a batch could not be written to the stream after every attempt
"""

from __future__ import annotations

from quarry_core.errors import QuarryError

__all__ = ["RedisSinkError"]


class RedisSinkError(QuarryError):
    """The Redis Streams event sink gave up on a batch (``attempts`` made); the message is redacted."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
