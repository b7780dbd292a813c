"""The model zoo: CIFAR-adapted nets by name, and any timm model as ``timm/<name>``."""
from autocls.models.registry import create_model, list_models, model_recipe, register_model

__all__ = ["create_model", "list_models", "model_recipe", "register_model"]
