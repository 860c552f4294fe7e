"""Dive into Deep Learning 5.2 ("Parameter Management"), run through paramops.

The D2L code is unchanged: it calls torch.nn.init. Inside `paramops.patched()` those
calls go to paramops.init (same signatures, paramops' RNG stream), and
`paramops.init_module(net, fn)` runs a D2L-style init function as one fused launch.

    python examples/d2l_parameter_management.py

tests/test_examples.py runs every section and checks what it claims.
"""
import torch
from torch import nn

import paramops


# --------------------------------------------------------------------- 5.2.1 access
def access():
    """A state_dict, one layer's parameters, and all of them at once."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    X = torch.rand(size=(2, 4))
    net(X)
    print(net[2].state_dict())
    print(type(net[2].bias), net[2].bias.data)
    print([(name, param.shape) for name, param in net.named_parameters()])
    print(net.state_dict()["2.bias"].data)
    return net


def block1():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def block2():
    net = nn.Sequential()
    for i in range(4):
        net.add_module(f"block {i}", block1())  # nested here
    return net


def nested():
    """Parameters of nested blocks: a block2 of block1s, then a Linear."""
    rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
    rgnet(torch.rand(size=(2, 4)))
    print(rgnet)
    print(rgnet[0][1][0].bias.data)
    return rgnet


# --------------------------------------------------------------------- 5.2.2 init
def init_normal(m):
    if type(m) is nn.Linear:
        nn.init.normal_(m.weight, mean=0, std=0.01)
        nn.init.zeros_(m.bias)


def init_xavier(m):
    if type(m) is nn.Linear:
        nn.init.xavier_uniform_(m.weight)


def init_42(m):
    if type(m) is nn.Linear:
        nn.init.constant_(m.weight, 42)


def my_init(m):
    """D2L's custom init: U(-10, 10), then keep only the weights with |w| >= 5."""
    if type(m) is nn.Linear:
        nn.init.uniform_(m.weight, -10, 10)
        m.weight.data *= m.weight.data.abs() >= 5


def builtin_init():
    """net.apply with normal(0, 0.01)/zeros, first through patched(), then fused."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with paramops.patched():          # the D2L line, unchanged, draws from paramops
        net.apply(init_normal)
    print(net[0].weight.data[0], net[0].bias.data[0])
    paramops.init_module(net, init_normal)  # the same, as one fused launch
    return net


def xavier_and_42():
    """Xavier on the first layer, the constant 42 on the last."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    paramops.init_module(net[0], init_xavier)
    paramops.init_module(net[2], init_42)
    print(net[0].weight.data[0], net[2].weight.data)
    return net


def custom_init():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    paramops.init_module(net, my_init)  # the in-place multiply reads the draw: it is flushed first
    print(net[0].weight[:2])
    after_init = net[0].weight.detach().clone()
    net[0].weight.data[:] += 1        # direct access works as in D2L
    net[0].weight.data[0, 0] = 42
    print(net[0].weight.data[0])
    return net, after_init


# --------------------------------------------------------------------- 5.2.3 tied
def tied():
    """One layer used twice: both uses see one tensor, and its gradients add. Under
    paramops.tie_gradients the two uses' gradients are summed by one fused op in float32
    (for K = 2 in float32, exactly autograd's sum); find_tied names the shared tensors."""
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    paramops.init_module(net)  # reset_parameters of every layer, fused; the shared one once
    print(paramops.find_tied(net))  # [['2.weight', '4.weight'], ['2.bias', '4.bias']]
    X = torch.rand(size=(2, 4))
    with paramops.tie_gradients(net):
        net(X).sum().backward()
    print(net[2].weight.data[0] == net[4].weight.data[0])
    net[2].weight.data[0, 0] = 100
    print(net[2].weight.data[0] == net[4].weight.data[0])  # the same object, not a copy
    return net, X


def main():
    torch.manual_seed(0)
    return {"access": access(), "nested": nested(), "builtin": builtin_init(), "xavier_42": xavier_and_42(),
            "custom": custom_init(), "tied": tied()}


if __name__ == "__main__":
    main()
