"""Put attention into an existing model: ``api`` (retrofit, the report), ``sites`` (the walk that
finds where a block can go), read with ``probe`` (shapes from one forward), ``graph`` (a traced
forward), ``residual`` (a residual unit and its integration strategies), ``run_reading`` (an
untraceable forward, read by running it) and ``op_kinds`` (which ops count as what); ``insert``
(the wrappers that put it there), ``cli`` (``senet retrofit``).

The package is callable: ``senet.retrofit(model, attn="se")`` is ``senet.retrofit.api.retrofit``.
"""

from senet._callable_module import make_callable
from senet.retrofit.api import RetrofitReport, Site, Skipped, retrofit

__all__ = ["RetrofitReport", "Site", "Skipped", "retrofit"]

make_callable(__name__, retrofit)
