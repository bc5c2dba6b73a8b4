"""Our SGD against torch.optim.SGD, Muon's orthogonalisation and groups, and the model registry on every input
shape."""

import copy

import pytest
import torch
import torch.nn.functional as F

from imgclf.engine.optim import SGD, Muon, muon_groups, orthogonalize
from imgclf.engine.schedule import lr_at
from imgclf.engine.step import set_lr
from imgclf.errors import ConfigError
from imgclf.models import MODELS, build_model
from imgclf.models.pretrained import head_parameters


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


def _with_singular_values(rows: int, cols: int, values: torch.Tensor) -> torch.Tensor:
    """A random rows × cols matrix whose singular values are `values`."""
    u, _ = torch.linalg.qr(torch.randn(rows, len(values)))
    v, _ = torch.linalg.qr(torch.randn(cols, len(values)))
    return u @ torch.diag(values) @ v.T


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])   # bf16: where the run computes in bf16 natively
@pytest.mark.parametrize("rows, cols", [(64, 576), (32, 32), (300, 20)])   # a conv's (out, in·k·k), square, tall
def test_newton_schulz_gives_a_nearly_orthogonal_matrix_in_the_same_directions(rows, cols, dtype):
    """Singular values spread 30× (and scaled far from 1) all land in the quintic iteration's band, about
    [0.68, 1.2] (exactly 1 is not its aim), and the result points where the exact U Vᵀ does, in fp32 or bf16."""
    torch.manual_seed(0)
    k = min(rows, cols)
    g = _with_singular_values(rows, cols, 50 * torch.logspace(0, -torch.log10(torch.tensor(30.0)).item(), k))
    o = orthogonalize(g, dtype=dtype)
    s = torch.linalg.svdvals(o)
    assert o.shape == g.shape and o.dtype == torch.float32
    assert s.min() >= 0.67 and s.max() <= 1.21, (s.min(), s.max())
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    assert (o * polar).sum() / (o.norm() * polar.norm()) > 0.97


def test_muon_takes_the_hidden_weights_and_leaves_sgd_the_rest():
    """fastcnn-tiny: Muon for the trained convolution filters, SGD for the BN shifts and the head; the frozen
    whitening conv in neither. One --lr sets both (the Muon group's lr_mult); the state round-trips bitwise."""
    torch.manual_seed(0)
    model = build_model("fastcnn-tiny", 1, 10, (8, 8))
    params = [p for p in model.parameters() if p.requires_grad]
    groups = muon_groups([{"params": [p for p in params if p.ndim > 1], "weight_decay": 5e-4},
                          {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
                         {id(p) for p in head_parameters(model)}, lr_mult=0.5)
    muon = [g for g in groups if g.get("muon")]
    convs = [m.weight for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and n != "whiten"]
    assert len(muon) == 1 and {id(p) for p in muon[0]["params"]} == {id(p) for p in convs}
    sgd_ids = {id(p) for g in groups if not g.get("muon") for p in g["params"]}
    assert id(model.head.weight) in sgd_ids and id(model.whiten.weight) not in sgd_ids | {id(p) for p in convs}

    def run(opt, xs):
        for x in xs:
            opt.zero_grad()
            F.cross_entropy(model(x), torch.arange(len(x)) % 10).backward()
            opt.step()

    opt = Muon(groups, lr=0.1, momentum=0.9, nesterov=True)
    set_lr(opt, 0.2)
    assert sorted(g["lr"] for g in opt.param_groups) == [0.1, 0.2, 0.2]
    xs = torch.randn(4, 16, 1, 8, 8)
    before = convs[0].detach().clone()
    run(opt, xs[:2])
    assert not torch.equal(before, convs[0])
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    state = copy.deepcopy(opt.state_dict())   # as a checkpoint holds it (the live one's buffers move on)
    run(opt, xs[2:])
    after = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(saved)
    fresh = Muon(groups, lr=0.1, momentum=0.9, nesterov=True)
    fresh.load_state_dict(state)
    run(fresh, xs[2:])
    assert all(torch.equal(after[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 20, 24)])
def test_every_model_adapts_to_the_data(name, shape):
    model = build_model(name, shape[0], 7, shape[1:])
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    out.sum().backward()


@pytest.mark.parametrize("name", ["fastcnn", "fastcnn-small", "fastcnn-tiny"])
def test_fastcnn_refuses_images_smaller_than_its_first_layer(name):
    from imgclf.errors import ConfigError

    for size in [(1, 1), (1, 28), (0, 0), (-8, -8)]:
        with pytest.raises(ConfigError, match="need images of at least 2×2 pixels"):
            build_model(name, 1, 10, size)
    assert build_model(name, 1, 10, (2, 2))(torch.randn(3, 1, 2, 2)).shape == (3, 10)   # the smallest that works


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
