"""hare: an asyncio-native task queue that speaks Celery's API and wire protocol on RabbitMQ."""

__version__ = "0.1.0"
