"""tracesim: record Kubernetes API-server watch streams and replay them through models of the
control plane, to find what breaks first when a cluster grows."""

__version__ = "0.1.0"

from .errors import TraceError, TracesimError
from .trace import Trace, TraceWriter, open_trace

__all__ = ["Trace", "TraceError", "TraceWriter", "TracesimError", "__version__", "open_trace"]
