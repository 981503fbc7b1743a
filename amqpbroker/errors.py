"""Errors that carry their wire meaning.

Every failure the broker reports to a client is one of these: a reply code (spec 1.4.3 /
RabbitMQ's constants), a text, and whether it closes the channel (soft error) or the whole
connection (hard error). They are turned into Channel.Close / Connection.Close in exactly one
place each (`session.channel.Channel.fail` and `session.connection.ClientConnection.fail`).
"""

from __future__ import annotations


class AMQPError(Exception):
    reply_code = 541
    hard = True

    def __init__(self, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(text)
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        return f"{self.name} - {self.text}"

    @property
    def name(self) -> str:
        return _NAMES[self.reply_code]


class ChannelError(AMQPError):
    """A soft error: closes only the channel (spec 1.4.3 'soft-error')."""

    hard = False


class ContentTooLarge(ChannelError):
    reply_code = 311


class NoRoute(ChannelError):
    reply_code = 312


class AccessRefused(ChannelError):
    reply_code = 403


class NotFound(ChannelError):
    reply_code = 404


class ResourceLocked(ChannelError):
    reply_code = 405


class PreconditionFailed(ChannelError):
    reply_code = 406


class ConnectionForced(AMQPError):
    reply_code = 320


class InvalidPath(AMQPError):
    reply_code = 402


class FrameError(AMQPError):
    reply_code = 501


class SyntaxError_(AMQPError):
    reply_code = 502


class CommandInvalid(AMQPError):
    reply_code = 503


class ChannelErrorHard(AMQPError):
    """504 CHANNEL_ERROR: a connection error about channel numbering."""

    reply_code = 504


class UnexpectedFrame(AMQPError):
    reply_code = 505


class ResourceError(AMQPError):
    reply_code = 506


class NotAllowed(AMQPError):
    reply_code = 530


class NotImplemented_(AMQPError):
    reply_code = 540


class InternalError(AMQPError):
    reply_code = 541


class LoginRefused(AMQPError):
    """403 ACCESS_REFUSED on the connection (authentication failure)."""

    reply_code = 403


_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}
