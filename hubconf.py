"""torch.hub entry points: ``torch.hub.load("path/to/senet", "se_resnet50", source="local")``.

Every model of senet's registry is an entry point; keyword arguments go to
``senet.create_model`` (``pretrained=True`` loads the published weights).
"""

dependencies = ["torch", "torchvision", "yaml", "safetensors"]

from senet.models import create_model as _create_model  # noqa: E402
from senet.models import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def build(**kwargs):
        return _create_model(name, **kwargs)

    build.__name__ = name
    build.__doc__ = f"senet.create_model({name!r}, **kwargs)"
    return build


globals().update({_name: _entry(_name) for _name in _list_models()})
