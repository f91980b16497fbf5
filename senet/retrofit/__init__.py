"""Put attention into an existing model: ``api`` (retrofit, the report), ``sites`` (where a block
can go), ``insert`` (the wrappers that put it there), ``cli`` (``senet retrofit``).

The package is callable: ``senet.retrofit(model, attn="se")`` is ``senet.retrofit.api.retrofit``.
"""

from senet._callable_module import make_callable
from senet.retrofit.api import RetrofitReport, Site, Skipped, retrofit

__all__ = ["RetrofitReport", "Site", "Skipped", "retrofit"]

make_callable(__name__, retrofit)
