"""Stage I's base models as registered entries (:mod:`.registry`): ``sd21`` (:mod:`.sd21`), ``sdxl`` (:mod:`.sdxl`),
``flux`` and ``flux-schnell`` (:mod:`.flux`)."""

from baselines.base_models.registry import (DEFAULT_GUIDANCE, DEFAULT_MODEL, BaseModel, BaseModelError,
                                            Conditioning, TextEncoder, as_conditioning, base_models, get_base_model,
                                            name_parts, register_base_model, unregister_base_model)

__all__ = ["DEFAULT_GUIDANCE", "DEFAULT_MODEL", "BaseModel", "BaseModelError", "Conditioning", "TextEncoder",
           "as_conditioning", "base_models", "get_base_model", "name_parts", "register_base_model",
           "unregister_base_model"]
