"""``tracesim serve``: a trace served as a live, read-only Kubernetes list/watch API.

:class:`~tracesim.serve.player.TracePlayer` plays a trace into the object store on a dilated
clock; :class:`~tracesim.serve.app.TraceServer` answers discovery, GET, LIST and WATCH over it.
"""

from .app import ServerThread, TraceServer, serve_forever
from .player import TracePlayer, parse_start_at

__all__ = ["ServerThread", "TracePlayer", "TraceServer", "parse_start_at", "serve_forever"]
