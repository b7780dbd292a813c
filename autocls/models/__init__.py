"""The model zoo: CIFAR-adapted nets by name, and any timm model as ``timm/<name>``."""
from autocls.models.registry import create_model, list_models, model_recipe, register_model
# the built-ins are registered before anything else can be: a net of the same name registered later replaces them,
# with a warning, and is not itself replaced when the zoo is first needed
from autocls.models import zoo  # noqa: E402,F401  (registers the built-ins)

__all__ = ["create_model", "list_models", "model_recipe", "register_model"]
