"""What hare does with each Celery setting: the table the migration guide is generated from.

Every Celery 5.7 setting has a status (tests/compat_unit/test_support.py checks that none is
missing and that docs/migrating-from-celery.md shows exactly `render_table()`):

* `hare`: hare itself honours it (most become a `hare.Hare` setting);
* `compat`: hare_compat honours it (routing, eager mode, schedules, imports...);
* `worker`: `hare worker` reads it through `Celery.worker_options()`;
* `notice`: it only tunes Celery's internals; accepted, with one logged notice per app;
* `refused`: any value but Celery's default raises `NotSupportedError` naming it.

`hare` and `compat` settings may still refuse some values (a `redis://` broker_url); the text
says which, and `hare_compat.app.mapping` enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hare_compat.app.defaults import DEFAULTS

__all__ = ("GROUPS", "RULES", "Rule", "Status", "render_table", "rule_for")

Status = Literal["hare", "compat", "worker", "notice", "refused"]
_STATUSES: tuple[Status, ...] = ("hare", "compat", "worker", "notice", "refused")


@dataclass(frozen=True, slots=True)
class Rule:
    """A setting's status and, in a sentence, what hare does with it."""

    status: Status
    does: str


# name  status  what hare does (continuation lines are indented).
_TABLE = """
accept_content  hare  the serializers (names or content types) a worker accepts
result_accept_content  refused  hare reads results with accept_content
enable_utc  compat  with timezone unset, True runs crontab schedules in UTC; False (the host's
  local zone) raises NotSupportedError: set timezone to a zone name
imports  compat  modules the worker imports when it loads the app
include  compat  modules the worker imports when it loads the app
timezone  compat  the zone crontab schedules run in (a zone name; Django's TIME_ZONE when unset);
  messages carry UTC times, which Celery reads alike; a naive eta/expires is UTC whatever it
  says, as in Celery 5.7
beat_schedule  compat  each entry becomes a hare periodic task, kept going by every worker
  without a beat process; schedules: crontab, schedule, timedelta, seconds; options: queue,
  expires
beat_scheduler  refused  schedules live in code (beat_schedule, add_periodic_task); a database
  scheduler such as django_celery_beat's is not available
beat_schedule_filename  notice  no beat, no schedule file
beat_sync_every  notice  no beat, no schedule file
beat_max_loop_interval  notice  every worker wakes for each occurrence itself
beat_cron_starting_deadline  notice  an occurrence missed while no worker ran is skipped
beat_enable_remote_control  notice  no beat process to control
beat_remote_control_max_tick_age  notice  no beat process to control
broker_url  hare  amqp://, amqps://, pyamqp:// (several joined by ;) and memory://; redis://,
  sqs:// and other transports raise NotSupportedError; HARE_BROKER_URL, then
  CELERY_BROKER_URL override it
broker_read_url  refused  one broker_url serves reads and writes
broker_write_url  refused  one broker_url serves reads and writes
broker_transport  hare  amqp / pyamqp (or unset); any other raises NotSupportedError
broker_transport_options  notice  Redis/SQS options; hare confirms every publish and retries
  until its publish_timeout
broker_connection_timeout  hare  connect_timeout
broker_connection_retry  notice  hare always reconnects, with backoff
broker_connection_retry_on_startup  notice  read by hare worker: False exits 3 when the broker does
  not answer at start; by default the worker waits for it
broker_connection_max_retries  notice  hare always reconnects, with backoff
broker_channel_error_retry  notice  hare always reconnects, with backoff
broker_failover_strategy  hare  round-robin (or unset): the URLs of broker_url are tried in
  turn; shuffle or a custom strategy raises NotSupportedError
broker_heartbeat  hare  heartbeat, in seconds
broker_heartbeat_checkrate  notice  aiormq checks heartbeats itself
broker_login_method  hare  PLAIN / AMQPLAIN (or unset); EXTERNAL raises NotSupportedError
broker_native_delayed_delivery_queue_type  notice  hare delays messages through its own TTL
  ladder
broker_pool_limit  notice  one connection per process and event loop
broker_pool_acquire_timeout  notice  one connection per process and event loop
broker_use_ssl  hare  True: amqps://; a dict's ca_certs, certfile, keyfile and cert_reqs become
  the URL's cafile, certfile, keyfile and no_verify_ssl; other keys raise NotSupportedError; TLS
  failures raise BrokerTLSError naming the cause (guide.md, TLS)
broker_host  refused  write it in broker_url
broker_port  refused  write it in broker_url
broker_user  refused  write it in broker_url
broker_password  refused  write it in broker_url
broker_vhost  refused  write it in broker_url
control_queue_ttl  notice  remote control uses hare's own queues
control_queue_expires  notice  remote control uses hare's own queues
control_queue_exclusive  notice  remote control uses hare's own queues
control_queue_durable  notice  remote control uses hare's own queues
control_exchange  notice  remote control uses hare's own queues
event_queue_expires  notice  tunes event receivers (Flower's); hare workers only send events
event_queue_ttl  notice  tunes event receivers (Flower's); hare workers only send events
event_queue_prefix  notice  tunes event receivers (Flower's); hare workers only send events
event_queue_exclusive  notice  tunes event receivers (Flower's); hare workers only send events
event_queue_durable  notice  tunes event receivers (Flower's); hare workers only send events
event_serializer  refused  hare sends Celery events in JSON, Celery's default
event_exchange  refused  hare sends Celery events to celeryev, Celery's default
redis_backend_use_ssl  refused  use a rediss:// result_backend
redis_db  refused  write it in the result_backend URL
redis_host  refused  write it in the result_backend URL
redis_port  refused  write it in the result_backend URL
redis_username  refused  write it in the result_backend URL
redis_password  refused  write it in the result_backend URL
redis_max_connections  notice  tunes Celery's Redis client
redis_socket_timeout  notice  tunes Celery's Redis client
redis_socket_connect_timeout  notice  tunes Celery's Redis client
redis_retry_on_timeout  notice  tunes Celery's Redis client
redis_socket_keepalive  notice  tunes Celery's Redis client
result_backend  hare  rpc://, redis:// (rediss://), and cache+memory:// (hare's in-process
  store, for tests); unset: no results; django-db, db+..., other cache+... and the rest raise
  NotSupportedError; CELERY_RESULT_BACKEND overrides it
result_cache_max  notice  tunes Celery's result cache
result_compression  refused  results are not compressed
result_exchange  notice  rpc replies go to the caller's queue through the default exchange
result_exchange_type  notice  rpc replies go to the caller's queue through the default exchange
result_expires  hare  result_expires (seconds or a timedelta); None or 0 (keep forever) raises
  NotSupportedError
result_chord_expires  refused  chord counters expire after result_expires, like the results
result_chord_retry_interval  notice  tunes Celery's chord counters
result_chord_join_timeout  notice  tunes Celery's chord counters
result_failure_expires  refused  failures expire after result_expires like other results
result_persistent  notice  rpc replies are transient, as Celery's default
result_extended  hare  result_extended: results carry name, args, kwargs, worker, retries, queue
result_serializer  hare  json; any other raises NotSupportedError
result_backend_transport_options  notice  tunes Celery's result backends
result_backend_max_sleep_between_retries_ms  notice  tunes Celery's result backends
result_backend_max_retries  notice  tunes Celery's result backends
result_backend_base_sleep_between_retries_ms  notice  tunes Celery's result backends
result_backend_always_retry  notice  tunes Celery's result backends
security_certificate  refused  message signing (the auth serializer) is not available
security_cert_store  refused  message signing (the auth serializer) is not available
security_key  refused  message signing (the auth serializer) is not available
security_key_password  refused  message signing (the auth serializer) is not available
security_digest  refused  message signing (the auth serializer) is not available
task_acks_late  hare  hare always acks after the task ran (False, ack on receipt, is not
  offered: a notice says so)
task_acks_on_failure_or_timeout  hare  True: a failed task is dead-lettered, then acked; False
  raises NotSupportedError
task_acks_on_failure  hare  True (or unset): as task_acks_on_failure_or_timeout; False raises
  NotSupportedError
task_acks_on_timeout  hare  True (or unset): as task_acks_on_failure_or_timeout; False raises
  NotSupportedError
task_always_eager  compat  apply_async and delay run the task in the calling process
task_eager_propagates  compat  an eager task's exception is raised by apply_async
task_store_eager_result  refused  eager results are not stored
task_annotations  refused  set options on the task decorators instead
task_compression  refused  messages are not compressed
task_create_missing_queues  compat  False: routing to a queue that task_queues does not declare
  raises QueueNotFound
task_create_missing_queue_type  hare  must be the type of the other queues (hare declares every
  work queue with one type), else NotSupportedError
task_create_missing_queue_exchange_type  refused  hare publishes to queues through the default
  exchange
task_inherit_parent_priority  refused  priority comes from the call or task_default_priority
task_default_delivery_mode  hare  persistent (2); transient (1) raises NotSupportedError
task_default_queue  hare  default_queue (Celery's default: celery)
task_default_queue_type  hare  queue_type: classic (declared exactly as Celery declares it) or
  quorum (hare's quorum queues add x-delivery-limit and dead-letter arguments)
task_default_exchange  notice  for direct exchanges Celery publishes straight to the queue, and
  so does hare
task_default_exchange_type  hare  direct; topic, fanout and headers raise NotSupportedError
task_default_routing_key  notice  for direct exchanges Celery publishes straight to the queue,
  and so does hare
task_default_rate_limit  refused  set rate_limit on the tasks
task_default_priority  compat  sent as priority= (0-9) when a call gives none; on quorum
  queues 5-9 travel in the queue's .high band, which hare workers run first
task_ignore_result  compat  the default of every task's ignore_result
task_protocol  hare  2; protocol 1 raises NotSupportedError
task_publish_retry  notice  hare waits for the broker's confirm and reconnects until
  publish_timeout
task_publish_retry_policy  notice  hare waits for the broker's confirm and reconnects until
  publish_timeout
task_queues  compat  the queues routes may name and the worker consumes by default (Queue
  objects or dicts); classic unless x-queue-type says quorum; other queue arguments, non-direct
  exchanges and non-durable queues raise NotSupportedError
task_queue_max_priority  hare  queue_max_priority: classic work queues are declared with
  x-max-priority, as Celery declares them; with quorum queues NotSupportedError (hare gives
  them priorities by bands, see the guide's Priorities)
task_reject_on_worker_lost  compat  the default of every task's reject_on_worker_lost: True
  puts the message of a task whose pool child died back on its queue (hare acks after the task
  ran, so this is Celery's behaviour with acks_late); else the task fails with WorkerLostError.
  A whole worker that dies leaves its messages unacked: the broker delivers them again
task_retry_on_worker_lost  compat  the default of every task's retry_on_worker_lost: True
  retries a task whose pool child died as self.retry would (max_retries and default_retry_delay
  apply); it wins over task_reject_on_worker_lost
task_remote_tracebacks  notice  failures carry the traceback text
task_repr_maxlevels  notice  tunes Celery's argument reprs
task_routes  compat  dicts (names, globs, compiled regexes), router functions and lists of them,
  with Celery's precedence
task_send_sent_event  notice  hare clients send no task-sent event: Flower lists a task once a
  worker sends task-received
task_serializer  hare  serializer: json, pickle, cloudpickle; others raise NotSupportedError
task_soft_time_limit  compat  the default soft_time_limit of every task
task_time_limit  compat  the default time_limit of every task
task_store_errors_even_if_ignored  refused  an ignored result is not stored
task_track_started  hare  track_started: a STARTED result (pid, hostname) is stored before the
  task runs; a task's track_started option overrides it
task_allow_error_cb_on_chord_header  refused  chord error callbacks run on the body only
worker_agent  refused  no worker agents
worker_autoscaler  notice  hare workers do not autoscale; run more pods or --processes
worker_cancel_long_running_tasks_on_connection_loss  notice  hare has no such switch
worker_soft_shutdown_timeout  notice  hare drains on SIGTERM within --drain-timeout
worker_enable_soft_shutdown_on_idle  notice  hare drains on SIGTERM within --drain-timeout
worker_concurrency  worker  hare worker -c, when the command line gives none: a number (or its
  text), or "auto", the CPUs the worker may use; None or 0 leave hare worker's default: a
  prefork child per CPU (as Celery), 16 threads, 1 for solo
worker_consumer  refused  no custom consumers
worker_direct  refused  no per-worker queues
worker_disable_rate_limits  notice  rate limits are the tasks' own
worker_deduplicate_successful_tasks  refused  no deduplication of redelivered tasks
worker_enable_remote_control  notice  remote control is always on
worker_hijack_root_logger  notice  hare keeps the root logger's handlers it finds
worker_log_color  notice  hare worker --loglevel; format your own handlers
worker_log_datefmt  notice  hare worker --loglevel; format your own handlers
worker_log_format  notice  hare worker --loglevel; format your own handlers
worker_task_log_datefmt  notice  hare worker --loglevel; format your own handlers
worker_task_log_format  notice  hare worker --loglevel; format your own handlers
worker_lost_wait  notice  hare fails, retries or requeues the task of a dead pool child at once
  and replaces the child
worker_max_memory_per_child  worker  hare worker --max-memory-per-child, when the command line
  gives none: a prefork child is replaced after a task that left it above this many KiB
  resident; None or 0: never
worker_max_tasks_per_child  worker  hare worker --max-tasks-per-child, when the command line
  gives none: a prefork child is replaced after this many tasks; None or 0: never
worker_pool  worker  hare worker -P, when the command line gives none: prefork (Celery's default;
  processes too), threads or solo run sync tasks as Celery's pools of those names (async tasks
  run on the worker's event loop); eventlet, gevent and custom pools raise ConfigurationError
worker_pool_putlocks  notice  tunes Celery's prefork pool; a hare worker starts a task only when
  one of its -c slots is free
worker_pool_restarts  notice  hare workers refuse the pool_restart command
worker_pool_start_method  worker  hare worker --pool-start-method, when the command line gives
  none: fork, spawn or forkserver start the prefork children
worker_proc_alive_timeout  notice  tunes the start-up of Celery's prefork children
worker_prefetch_multiplier  notice  prefetch equals concurrency (a multiplier of 1)
worker_eta_task_limit  notice  delayed tasks wait in the broker, never in a worker
worker_enable_prefetch_count_reduction  notice  prefetch equals concurrency
worker_disable_prefetch  notice  prefetch equals concurrency
worker_redirect_stdouts  notice  print() goes to the worker's stdout
worker_redirect_stdouts_level  notice  print() goes to the worker's stdout
worker_send_task_events  hare  worker_send_task_events: workers send Celery's events (heartbeats,
  task events) for Flower, as hare worker -E does
worker_state_db  refused  no persistent worker state
worker_timer  refused  no custom timers
worker_timer_precision  notice  no Celery timer
worker_detect_quorum_queues  notice  hare knows its queue types
"""

#: Settings of Celery's other result backends (hare refuses those backends by result_backend):
#: prefix -> what hare does.
GROUPS: Mapping[str, Rule] = {
    prefix: Rule("notice", f"only Celery's {backend} result backend reads it")
    for prefix, backend in (
        ("cache_", "cache"),
        ("cassandra_", "Cassandra"),
        ("s3_", "S3"),
        ("azureblockblob_", "Azure Block Blob"),
        ("gcs_", "Google Cloud Storage"),
        ("couchbase_", "Couchbase"),
        ("arangodb_", "ArangoDB"),
        ("mongodb_", "MongoDB"),
        ("cosmosdbsql_", "CosmosDB"),
        ("elasticsearch_", "Elasticsearch"),
        ("database_", "SQLAlchemy database"),
    )
}


def _parse(table: str) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    name = ""
    for line in table.strip().splitlines():
        if line.startswith(" "):
            old = rules[name]
            rules[name] = Rule(old.status, f"{old.does} {line.strip()}")
            continue
        name, status, does = line.split("  ", 2)
        if status not in _STATUSES or name not in DEFAULTS or name in rules:
            raise AssertionError(f"bad settings table line: {line!r}")
        rules[name] = Rule(status, does)
    return rules


#: Setting name -> rule, for every Celery setting outside `GROUPS`.
RULES: Mapping[str, Rule] = _parse(_TABLE)


def rule_for(name: str) -> Rule | None:
    """The rule of Celery setting `name` (lowercase), or `None` if Celery has no such setting."""
    found = RULES.get(name)
    if found is not None:
        return found
    for prefix, group in GROUPS.items():
        if name.startswith(prefix) and name in DEFAULTS:
            return group
    return None


def render_table() -> str:
    """The Markdown table of docs/migrating-from-celery.md's Settings section."""
    lines = ["| setting | status | what hare does |", "|---|---|---|"]
    lines.extend(f"| `{name}` | {rule.status} | {rule.does} |" for name, rule in RULES.items())
    lines.extend(
        f"| `{prefix}*` | {rule.status} | {rule.does} |" for prefix, rule in GROUPS.items()
    )
    return "\n".join(lines)
