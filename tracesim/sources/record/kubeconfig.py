"""Cluster address, credentials and TLS settings, loaded the way kubectl loads them.

We reuse the config loader of the official ``kubernetes`` PyPI package (``kubernetes.config``)
rather than rewriting kubeconfig handling: it is maintained with the Kubernetes client-go
semantics (merged ``KUBECONFIG`` lists, contexts, bearer tokens and token files, client
certificates given as files or inline data, ``exec`` credential plugins with expiry, OIDC,
``proxy-url``, ``tls-server-name``, ``insecure-skip-tls-verify``, and the in-cluster service
account with its rotating token). ``kubernetes_asyncio`` has the same loader but would add a
second HTTP stack; we only need the loader, because the recorder streams with aiohttp itself,
and the synchronous package also gives the benchmark its naive baseline (its ``watch.Watch``).

Credentials stay inside :class:`ClusterAuth`: its ``repr`` and every error message this module
raises name the server, the context and the file, never a token, a password or a key.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import TracesimError

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def safe_url(url: str) -> str:
    """``url`` without user:password and query (safe to print)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class ClusterAuth:
    """Where the API server is and how to talk to it (TLS context, auth header, proxy).

    ``configuration`` is the ``kubernetes.client.Configuration`` the loader filled; its
    ``refresh_api_key_hook`` renews expiring tokens (exec plugins, in-cluster token files)
    when :meth:`headers` is called. Use :meth:`reload` after a 401 to re-run the whole loader.
    """

    server: str
    context: str | None
    origin: str  # "kubeconfig <path>" or "in-cluster service account"
    ssl: ssl.SSLContext | bool
    proxy: str | None
    server_hostname: str | None
    kubeconfig: str | None = None
    configuration: Any = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate a request (``Authorization``), freshly refreshed."""
        cfg = self.configuration
        headers: dict[str, str] = {}
        if cfg is None:
            return headers
        # The loader stores "Bearer <token>" under "BearerToken" (older releases used
        # "authorization"); get_api_key_with_prefix runs the refresh hook of expiring tokens.
        token = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
            "authorization"
        )
        if token:
            headers["Authorization"] = token
        elif cfg.username or cfg.password:
            headers["Authorization"] = cfg.get_basic_auth_token()
        return headers

    def reload(self) -> ClusterAuth:
        """Run the loader again (re-reads files, re-runs exec plugins): new credentials."""
        if self.kubeconfig is None and self.origin.startswith("in-cluster"):
            return load_auth(None, None, in_cluster=True)
        return load_auth(self.kubeconfig, self.context)

    def __repr__(self) -> str:  # never show credentials
        return f"<ClusterAuth {safe_url(self.server)} context={self.context!r} via {self.origin}>"


def _ssl_context(cfg: Any) -> ssl.SSLContext | bool:
    """TLS as kubectl does it: verify against the cluster CA (or the system store) by default."""
    if not cfg.host.startswith("https"):
        return False  # plain http: no TLS at all (aiohttp's "no ssl")
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    if not cfg.verify_ssl:  # insecure-skip-tls-verify: the user asked for it explicitly
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    home = Path("~/.kube/config").expanduser()
    return str(home) if home.is_file() else None


def _config_error(where: str, exc: BaseException) -> TracesimError:
    # ConfigException messages name keys and files, not secret values; keep the first line.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TracesimError(f"{where}: cannot load cluster credentials ({text})")


def load_auth(
    kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = False
) -> ClusterAuth:
    """Load the cluster of ``context`` (default: the current one) from ``kubeconfig``.

    Without ``kubeconfig`` the ``KUBECONFIG`` variable or ``~/.kube/config`` is used, and
    inside a pod without either, the in-cluster service account. Raises
    :class:`~tracesim.errors.TracesimError` with a one-line message on a missing file, an
    unknown context or unusable credentials.
    """
    try:
        from kubernetes.client import Configuration
        from kubernetes.config import config_exception, incluster_config, kube_config
    except ImportError:  # pragma: no cover - a declared dependency
        raise TracesimError(
            "tracesim record needs the 'kubernetes' package: pip install kubernetes"
        ) from None

    cfg = Configuration()
    if kubeconfig is not None and not in_cluster:
        for part in kubeconfig.split(os.pathsep):
            if part and not Path(part).expanduser().is_file():
                raise TracesimError(f"--kubeconfig {part}: no such file")
    path = None if in_cluster else (kubeconfig or _default_kubeconfig())
    if path is None:
        if in_cluster or os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                incluster_config.InClusterConfigLoader(
                    token_filename=str(SERVICE_ACCOUNT_TOKEN),
                    cert_filename=str(SERVICE_ACCOUNT_TOKEN.with_name("ca.crt")),
                ).load_and_set(cfg)
            except config_exception.ConfigException as exc:
                raise _config_error("in-cluster service account", exc) from None
            return ClusterAuth(
                server=cfg.host,
                context=None,
                origin="in-cluster service account",
                ssl=_ssl_context(cfg),
                proxy=None,
                server_hostname=None,
                configuration=cfg,
            )
        raise TracesimError(
            "no kubeconfig: pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config"
        )
    try:
        contexts, current = kube_config.list_kube_config_contexts(path)
    except config_exception.ConfigException as exc:
        raise _config_error(f"kubeconfig {path}", exc) from None
    except Exception as exc:  # malformed YAML and friends
        raise _config_error(f"kubeconfig {path}", exc) from None
    names = [c.get("name") for c in contexts or []]
    if context is not None and context not in names:
        listed = ", ".join(str(n) for n in names) or "none"
        raise TracesimError(
            f"context {context!r} is not in kubeconfig {path} (contexts there: {listed}); "
            "see kubectl config get-contexts"
        )
    if context is None and not current:
        raise TracesimError(f"kubeconfig {path} has no current-context; pass --context NAME")
    try:
        kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except config_exception.ConfigException as exc:
        raise _config_error(f"kubeconfig {path}", exc) from None
    except (OSError, ssl.SSLError) as exc:
        raise _config_error(f"kubeconfig {path}", exc) from None
    try:
        ssl_ctx = _ssl_context(cfg)
    except (OSError, ssl.SSLError) as exc:
        raise TracesimError(
            f"kubeconfig {path}: unusable TLS files ({type(exc).__name__}: {exc.strerror or exc})"
        ) from None
    return ClusterAuth(
        server=cfg.host,
        context=context or (current or {}).get("name"),
        origin=f"kubeconfig {path}",
        ssl=ssl_ctx,
        proxy=cfg.proxy or None,
        server_hostname=getattr(cfg, "tls_server_name", None) or None,
        kubeconfig=kubeconfig,
        configuration=cfg,
    )
