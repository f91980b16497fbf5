"""Put attention into an existing model. ``api``: retrofit itself. It reads the model with
``probe`` (shapes from one forward), ``sites`` (the walk that finds the units) over ``graph`` (a
traced forward), ``residual`` (a residual unit and its integration strategies), ``hook_reading``
(an untraceable forward, read by running it) and ``op_kinds`` (which ops count as what); it
``plan``s each site, checks and wires the plan in with ``wiring`` (using the wrappers of
``insert``), and returns a ``report``. ``backbone``: detection and segmentation models;
``cli``: ``senet retrofit``.

``senet.retrofit(model, attn="se")`` is ``senet.retrofitting.api.retrofit``.
"""

from senet.retrofitting.api import retrofit
from senet.retrofitting.errors import RetrofitError
from senet.retrofitting.report import RetrofitReport, Site, Skipped

__all__ = ["RetrofitError", "RetrofitReport", "Site", "Skipped", "retrofit"]
