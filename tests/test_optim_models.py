"""Our SGD against torch.optim.SGD, and the model registry on every input shape."""

import pytest
import torch
import torch.nn.functional as F

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


def test_tutorial_net_channel_padding_computes_the_tutorials_function():
    """The CPU path pads conv1 to 8 channels for speed: outputs and every gradient must match the tutorial's
    forward (pool(relu(conv))) computed with the plain layers and the same parameters."""
    torch.manual_seed(0)
    m = build_model("tutorial-net", 3, 10, (32, 32))
    x = torch.randn(5, 3, 32, 32)

    def tutorial_forward(x: torch.Tensor) -> torch.Tensor:
        x = m.pool(F.relu(m.conv1(x)))
        x = m.pool(F.relu(m.conv2(x)))
        return m.fc3(F.relu(m.fc2(F.relu(m.fc1(torch.flatten(x, 1))))))

    for fmt in (torch.contiguous_format, torch.channels_last):
        m.to(memory_format=fmt)
        xin = x.contiguous(memory_format=fmt)
        ref = tutorial_forward(xin)
        ref_grads = torch.autograd.grad(ref.square().sum(), list(m.parameters()))
        out = m(xin)
        grads = torch.autograd.grad(out.square().sum(), list(m.parameters()))
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        for (name, _), g, r in zip(m.named_parameters(), grads, ref_grads):
            assert g.shape == r.shape, name
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5, msg=name)


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
