"""The retrofitting layer's error: an argument of ``senet.retrofit`` that cannot be applied."""

from __future__ import annotations


class RetrofitError(ValueError):
    """``senet.retrofit`` cannot put attention where it was asked to; the message names the
    argument (``attn``, ``strategy``, ``stages``, ``sites``, ``init``, ...) and what to do."""
