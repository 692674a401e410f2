"""One TLS context per process for every HTTP client that checks certificates.

Each ``httpx.Client`` (and each ``httpx.get``) made its own context and loaded the CA bundle
into it: about 20 ms of CPU, more than a request to a service nearby. Steps make a client
each (a health check, a metrics measurement, a GitHub call), so a release paid it per step.
One context, made on first use, is shared: OpenSSL allows a configured context to be used by
many connections and threads at once; nothing here changes it after it is made.

The context is httpx's own default (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` if set when it is
first made, the certifi bundle otherwise), so what a client trusts is unchanged.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def _verifying() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def verify(check: bool = True) -> ssl.SSLContext | bool:
    """What to pass as an ``httpx`` client's ``verify``: the shared context, or ``False``
    where a step said not to check the server's certificate."""
    return _verifying() if check else False
