"""Our SGD against torch.optim.SGD, and the model registry on every input shape."""

import pytest
import torch

from imgclf.engine.optim import SGD
from imgclf.engine.schedule import lr_at
from imgclf.errors import ConfigError
from imgclf.models import MODELS, build_model


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 5e-4), (0.9, True, 5e-4)])
def test_sgd_matches_torch(momentum, nesterov, wd):
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 3)
    b = torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    ours = SGD([{"params": a.parameters(), "weight_decay": wd}], lr=0.1, momentum=momentum, nesterov=nesterov)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    for _step in range(5):
        x = torch.randn(8, 5)
        for m, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            m(x).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    state = ours.state_dict()
    fresh = SGD([{"params": a.parameters(), "weight_decay": wd}], lr=0.1, momentum=momentum, nesterov=nesterov)
    fresh.load_state_dict(state)
    assert all((x is None and y is None) or torch.equal(x, y)
               for x, y in zip(fresh.momentum_buffers[0], ours.momentum_buffers[0]))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 20, 24)])
def test_every_model_adapts_to_the_data(name, shape):
    model = build_model(name, shape[0], 7, shape[1:])
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    out.sum().backward()


def test_tutorial_net_is_exactly_the_tutorials():
    m = build_model("tutorial-net", 3, 10, (32, 32))
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {"conv1.weight": (6, 3, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5),
                      "conv2.bias": (16,), "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120),
                      "fc2.bias": (84,), "fc3.weight": (10, 84), "fc3.bias": (10,)}
    with pytest.raises(ConfigError, match="at least 16×16.*--image-size"):
        build_model("tutorial-net", 1, 10, (8, 8))


def test_whitening_layer_decorrelates_patches():
    model = build_model("fastcnn-tiny", 3, 10, (16, 16))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 3, 16, 16, generator=g)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.5, 0.7]])    # strongly correlated channels
    x = torch.einsum("ij,njhw->nihw", mix, z)
    model.init_from_data(x)
    y = model.whiten(x)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(y.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.1)


def test_schedules():
    assert lr_at(0, 100, 1.0, "onecycle", 10) == pytest.approx(0.19)
    assert lr_at(9, 100, 1.0, "onecycle", 10) == pytest.approx(1.0)
    assert lr_at(99, 100, 1.0, "onecycle", 10) == pytest.approx(1 / 90)
    assert lr_at(50, 100, 1.0, "cosine", 0) == pytest.approx(0.5)
    assert lr_at(80, 100, 1.0, "step", 0) == pytest.approx(0.01)
    assert lr_at(80, 100, 0.3, "constant", 0) == 0.3
