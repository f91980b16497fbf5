"""Where attention goes in a residual unit (paper Fig. 5 and Table 15): the integration
strategies that the model zoo builds and ``senet.retrofit`` inserts."""

from __future__ import annotations

# standard: on the residual branch, before the add; pre: before the residual unit; post: after
# the add and ReLU; identity: on the identity branch; conv3x3: after a bottleneck's 3x3 conv.
STRATEGIES: tuple[str, ...] = ("standard", "pre", "post", "identity", "conv3x3")
