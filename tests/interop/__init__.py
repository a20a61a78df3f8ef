"""Mixed fleets: real Celery 5 workers and clients beside hare on one RabbitMQ (issue 7)."""
