"""One namespace socket -> many channels and RPCs: id allocation, routing, failure fan-out."""

from ._channel import Channel, ChannelClosed
from ._connection import Connection

__all__ = ["Channel", "ChannelClosed", "Connection"]
