"""Health checks of a deployment's new version: an HTTP GET of its health URL.

Not pure (network): the ``deploy`` commands probe (``start`` refuses an unreachable URL,
``wait`` records every check with the deployment), and the processor's gate acts on the
recorded failures (``gate.HEALTH_FAILURES`` in a row fail the deployment).
"""

from __future__ import annotations

import urllib.error
import urllib.request


def probe(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """``(healthy, what was seen)``: healthy on a 2xx/3xx answer within ``timeout``."""
    if not url.startswith(("http://", "https://")):
        return False, f"not an http(s) URL: {url[:100]!r}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http(s) only)
            return 200 <= r.status < 400, f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return False, f"unreachable: {reason}"[:300]
