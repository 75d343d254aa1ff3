"""tracesim: record Kubernetes API-server watch streams and replay them through models of the
control plane, to find what breaks first when a cluster grows."""

__version__ = "0.1.0"

from .errors import TraceError, TracesimError  # noqa: E402
from .trace import Trace, TraceWriter, open_trace  # noqa: E402

__all__ = ["Trace", "TraceError", "TraceWriter", "TracesimError", "__version__", "open_trace"]
