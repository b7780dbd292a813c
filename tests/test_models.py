import pytest
import torch

from autocls.errors import UserError
from autocls.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("num_classes", [10, 100])
def test_zoo_model_forward_backward_32px(name, num_classes):
    model = create_model(name, num_classes=num_classes)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_zoo_handles_8px_grayscale():
    for name in ("lenet", "resnet9", "resnet18", "vgg11_bn", "densenet_bc_40", "wrn16_4"):
        assert create_model(name, 10, in_chans=1)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_timm_model_by_name():
    model = create_model("timm/resnet10t", num_classes=7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_unknown_model_names():
    with pytest.raises(UserError, match="unknown model 'resnet19'"):
        create_model("resnet19", 10)
    with pytest.raises(UserError, match="unknown timm model"):
        create_model("timm/not_a_model", 10)
    with pytest.raises(UserError, match="no pretrained weights"):
        create_model("resnet18", 10, pretrained=True)


def test_pretrained_offline_is_a_clear_error(monkeypatch):
    import autocls.models.registry as registry

    monkeypatch.setattr(registry, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-cache")
    with pytest.raises(UserError, match="pretrained weights"):
        create_model("timm/resnet10t", 10, pretrained=True)
