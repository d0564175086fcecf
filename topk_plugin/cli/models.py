"""Building the model a subcommand works on, by name, with optional local weights."""
from __future__ import annotations

from torch import nn

from ..zoo import create_model, placement_of
from ..zoo.factory import default_pretrained
from ..zoo.weights import WeightsUnavailableError, load_weights_file, state_dict_mismatch

__all__ = ["load_model", "placement"]


def load_model(name: str, weights: str | None = None) -> nn.Module:
    """A model by timm or torchvision name (``<base>`` or ``<base>_topk<pct>``).

    ``weights`` is a local state dict of the dense base. Without it: weights
    that a pip package ships when there are some (offline), else the hub's.
    Weights that are unreachable or do not fit the model raise one-line
    ``ValueError``s that say what to pass instead.
    """
    if weights is None:
        try:
            return create_model(name, pretrained=default_pretrained(name))
        except WeightsUnavailableError as error:
            raise ValueError(f"{error.problem}; pass --weights FILE, a state dict of the dense base model saved with "
                             "torch.save(model.state_dict(), FILE)") from None
    try:
        return create_model(name, weights_path=weights)
    except RuntimeError as error:  # load_state_dict's error lists every tensor on a line of its own
        if "state_dict" not in str(error):
            raise
        mismatch = state_dict_mismatch(load_weights_file(weights), create_model(name))
        raise ValueError(f"--weights {weights} does not fit {name}: {mismatch}; pass the weights of {name}'s "
                         "dense base model") from None


def placement(name: str, model: nn.Module, layers: list[str] | None) -> tuple[list[str], int]:
    """(layers, channel_dim): ``layers`` if given, else the registry's placement for ``name``."""
    found = placement_of(name, model)
    return (list(layers) if layers else list(found.layers)), found.channel_dim
