"""Transports: the seam between hare and a broker."""

from hare.transport.base import Consumer as Consumer
from hare.transport.base import Delivery as Delivery
from hare.transport.base import DeliveryHandler as DeliveryHandler
from hare.transport.base import Envelope as Envelope
from hare.transport.base import Properties as Properties
from hare.transport.base import Transport as Transport

__all__ = ("Consumer", "Delivery", "DeliveryHandler", "Envelope", "Properties", "Transport")
