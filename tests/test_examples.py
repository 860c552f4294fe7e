"""The D2L 5.2 walkthrough (examples/d2l_parameter_management.py): every section runs and
does what it says, with the values paramops' calls give."""
import copy
import importlib.util
import math
import pathlib

import torch
from torch import nn

import paramops
from conftest import assert_bitwise

PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "d2l_parameter_management.py"


def load():
    spec = importlib.util.spec_from_file_location("d2l_example", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


D2L = load()


def test_main_runs(capsys):
    out = D2L.main()
    assert set(out) == {"access", "nested", "builtin", "xavier_42", "custom", "tied"}
    assert "Parameter" in capsys.readouterr().out


def test_access():
    net = D2L.access()
    sd = net.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in net.named_parameters()] == list(sd)
    assert isinstance(net[2].bias, nn.Parameter) and sd["2.bias"].shape == (1,)
    assert sd["0.weight"].data_ptr() == net[0].weight.data_ptr()  # state_dict shares memory


def test_nested():
    rgnet = D2L.nested()
    names = [n for n, _ in rgnet.named_parameters()]
    assert len(names) == 4 * 4 + 2 and names[0] == "0.block 0.0.weight" and names[-1] == "1.bias"
    assert rgnet[0][1][0].bias.shape == (8,)


def test_builtin_init_values():
    torch.manual_seed(5)
    net = D2L.builtin_init()
    # the fused init_module call is the last writer: replay both passes call by call
    torch.manual_seed(5)
    tmp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))  # builtin_init's net
    with paramops.patched():
        tmp.apply(D2L.init_normal)
        tmp.apply(D2L.init_normal)
    for a, b in zip(tmp.parameters(), net.parameters()):
        assert_bitwise(a.detach(), b.detach())
    assert all(torch.all(m.bias == 0) for m in (net[0], net[2]))
    big = nn.Linear(1000, 1000)
    paramops.init_module(big, D2L.init_normal)
    assert abs(float(big.weight.std()) / 0.01 - 1) < 6 / math.sqrt(2e6) and torch.all(big.bias == 0)


def test_xavier_and_42():
    net = D2L.xavier_and_42()
    bound = math.sqrt(6 / (4 + 8))
    w = net[0].weight
    w = w.detach()
    assert torch.all(w.abs() <= bound) and float(w.abs().max()) > bound / 2
    assert torch.all(net[2].weight == 42)


def test_custom_init():
    _, w = D2L.custom_init()
    nz = w[w != 0]
    assert torch.all((nz.abs() >= 5) & (nz.abs() <= 10))
    big = nn.Linear(500, 400)
    paramops.init_module(big, D2L.my_init)
    w = big.weight.detach()
    frac_zero = float((w == 0).float().mean())
    assert abs(frac_zero - 0.5) < 6 * math.sqrt(0.25 / w.numel())  # P(|U(-10,10)| < 5) = 1/2
    assert torch.all((w == 0) | ((w.abs() >= 5) & (w.abs() <= 10)))


def test_tied_gradients_add():
    """The walkthrough's backward ran under tie_gradients: its shared gradient is the sum of
    the two uses' gradients, taken from an untied copy with the weights before the edit
    (for K = 2 in float32 the fused sum is autograd's, bit for bit)."""
    torch.manual_seed(1)
    net, X = D2L.tied()
    assert net[2] is net[4] and net[2].weight[0, 0] == 100
    assert paramops.find_tied(net) == [["2.weight", "4.weight"], ["2.bias", "4.bias"]]
    torch.manual_seed(1)
    shared = nn.Linear(8, 8)
    again = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    paramops.init_module(again)
    untied = copy.deepcopy(again)
    untied[4] = copy.deepcopy(untied[2])
    assert untied[2] is not untied[4]
    untied(X).sum().backward()
    assert_bitwise(net[2].weight.grad, untied[2].weight.grad + untied[4].weight.grad)
    assert_bitwise(net[2].bias.grad, untied[2].bias.grad + untied[4].bias.grad)
    assert not torch.allclose(untied[2].weight.grad, untied[4].weight.grad)
