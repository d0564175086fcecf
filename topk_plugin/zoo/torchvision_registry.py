"""``<base>_topk<pct>[mean]`` as torchvision model names (``get_model``, ``list_models``).

torchvision's ``register_model`` is private (``torchvision.models._api``): it
raises on duplicate names and its shape may change. Registration is therefore
guarded: versions in ``TESTED`` are known to work; any other version is
checked for the exact pieces used here and refused with a clear message.
Each builder carries its base's signature, so ``get_model_weights`` finds the
base's weights enum and ``weights="DEFAULT"`` works as for the base.
"""
from __future__ import annotations

import inspect

import torchvision
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .apply import apply_placement
from .names import EAGER_PCTS, MODES, VariantName
from .placements import TORCHVISION, Placement
from .rules import torchvision_default

__all__ = ["register_torchvision", "build_torchvision", "torchvision_placement", "TorchvisionRegistryError", "TESTED"]

# torchvision releases whose private registry API this module was checked against.
TESTED = SpecifierSet(">=0.14,<0.31")
_REGISTERED: list[str] = []


class TorchvisionRegistryError(RuntimeError):
    """torchvision's private model registry is not what this module expects."""


def _private_api():
    """``(register_model, BUILTIN_MODELS)`` after checking they look as expected."""
    version = Version(torchvision.__version__.split("+")[0])
    try:
        from torchvision.models import _api
    except ImportError as error:
        raise _refuse(version, "torchvision.models._api is gone") from error
    register, table = getattr(_api, "register_model", None), getattr(_api, "BUILTIN_MODELS", None)
    if not callable(register) or not isinstance(table, dict):
        raise _refuse(version, "register_model/BUILTIN_MODELS changed")
    if version not in TESTED:
        params = list(inspect.signature(register).parameters)
        if params != ["name"]:
            raise _refuse(version, f"register_model's parameters are {params}, expected ['name']")
    return register, table


def _refuse(version, what: str) -> TorchvisionRegistryError:
    return TorchvisionRegistryError(
        f"cannot register Top-K variants with torchvision {version}: {what} (checked against "
        f"torchvision {TESTED}). torchvision.models.get_model('<base>_topk<pct>') is unavailable; "
        "topk_plugin.create_model('tv:<base>_topk<pct>') still works. Please report this."
    )


def torchvision_placement(base: str, model=None) -> Placement:
    """The registered placement of ``base``, else the default rule traced on ``model``."""
    placement = TORCHVISION.get(base)
    if placement is None:
        if model is None:
            model = torchvision.models.get_model(base)
        placement = torchvision_default(model)
    return placement


def build_torchvision(variant: VariantName, *, sparse: bool = True, **kwargs):
    """The base model from torchvision's builder (``weights=...`` as usual), then Top-K."""
    base_builder = torchvision.models.get_model_builder(variant.base)
    model = base_builder(**kwargs)
    if not sparse:
        return model
    return apply_placement(model, variant, torchvision_placement(variant.base, model), "torchvision")


def _builder(variant: VariantName):
    base_builder = torchvision.models.get_model_builder(variant.base)

    def builder(**kwargs):
        return build_torchvision(variant, **kwargs)

    builder.__name__ = builder.__qualname__ = variant.name
    builder.__module__ = __name__
    builder.__signature__ = inspect.signature(base_builder)  # get_model_weights reads `weights`
    builder.__doc__ = (
        f"torchvision {variant.base} with spatial Top-K (k={variant.k}, mode={variant.mode!r}) at "
        f"{', '.join(TORCHVISION[variant.base].layers)}; weights= takes {variant.base}'s weights."
    )
    return builder


def registered_torchvision_names() -> list[str]:
    return list(_REGISTERED)


def register_torchvision() -> list[str]:
    """Register every base in ``placements.TORCHVISION`` for every eager percent and mode (idempotent)."""
    if _REGISTERED:
        return registered_torchvision_names()
    register, table = _private_api()
    known = set(torchvision.models.list_models())
    for base in TORCHVISION:
        if base not in known:
            raise TorchvisionRegistryError(
                f"torchvision {torchvision.__version__} has no model {base!r}; update placements.TORCHVISION"
            )
    for base in TORCHVISION:
        for pct in EAGER_PCTS:
            for mode in MODES.values():
                variant = VariantName(base, pct, mode)
                owner = table.get(variant.name)
                if owner is not None and owner.__module__ != __name__:
                    raise TorchvisionRegistryError(
                        f"torchvision already has a model named {variant.name!r} from {owner.__module__}"
                    )
                if owner is None:  # re-registration after a module reload is a no-op
                    register(name=variant.name)(_builder(variant))
                _REGISTERED.append(variant.name)
    return registered_torchvision_names()
