"""MQTT errors with their wire meaning.

A decoder or session handler raises one of these; the session turns it into the answer
the spec requires in one place (`MQTTSession.fail`): before CONNACK, a CONNACK with the
reason code (MQTT 5) or the 3.1.1 return code where one exists; after it, a DISCONNECT
with the reason code on MQTT 5; on MQTT 3.1.1 the network connection is simply closed
(3.1.1 section 4.8: "the Server MUST close the Network Connection").
"""

from __future__ import annotations

# MQTT 5.0 section 2.4, table 2-6: the reason codes we send.
SUCCESS = 0x00
NORMAL_DISCONNECTION = 0x00
GRANTED_QOS_0, GRANTED_QOS_1, GRANTED_QOS_2 = 0x00, 0x01, 0x02
DISCONNECT_WITH_WILL = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_IDENTIFIER_IN_USE = 0x91
PACKET_IDENTIFIER_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# MQTT 3.1.1 section 3.2.2.3: CONNACK return codes, and the 5.0 code each stands for.
V3_CONNACK = {
    UNSUPPORTED_PROTOCOL_VERSION: 0x01,
    CLIENT_IDENTIFIER_NOT_VALID: 0x02,
    SERVER_UNAVAILABLE: 0x03,
    BAD_USER_NAME_OR_PASSWORD: 0x04,
    NOT_AUTHORIZED: 0x05,
}


class MQTTError(Exception):
    """A protocol violation or refusal; `reason` is the MQTT 5 reason code."""

    reason = UNSPECIFIED_ERROR

    def __init__(self, text: str, reason: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        if reason is not None:
            self.reason = reason


class MalformedPacket(MQTTError):
    reason = MALFORMED_PACKET


class ProtocolError(MQTTError):
    reason = PROTOCOL_ERROR


class PacketTooLarge(MQTTError):
    reason = PACKET_TOO_LARGE


class UnsupportedProtocolVersion(MQTTError):
    reason = UNSUPPORTED_PROTOCOL_VERSION

    def __init__(self, text: str, level: int) -> None:
        super().__init__(text)
        self.level = level
