"""The on-disk trace format: schema, object extraction, writer and reader."""

from .reader import Trace, open_trace
from .schema import FORMAT_VERSION, SCHEMA
from .writer import TraceWriter

__all__ = ["FORMAT_VERSION", "SCHEMA", "Trace", "TraceWriter", "open_trace"]
