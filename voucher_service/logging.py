"""Request ids for structured logs: set per request, added to every log record."""

import contextvars
import logging

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class OneLineExceptionFilter(logging.Filter):
    """Turns a logged exception into one line (its type and message), without traceback.

    For errors that are expected and handled, such as django-redis ignoring a Redis
    outage on every cache call: formatting a traceback per call costs milliseconds of
    CPU per request exactly when the service is degraded, and says nothing new.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
