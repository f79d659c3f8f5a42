"""Helpers for model tests."""

import torch


def trained_looking(model):
    """Eval-mode model with non-trivial norm statistics and scales, as after training.

    Fresh BatchNorm layers (unit scale, zero statistics) would hide bugs in how streaming, export and
    batch-norm folding treat them.
    """
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(0.0, 0.2)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()
