"""The tiny convolutional classifier the runner tests export to ONNX: 3x224x224 in, 10 classes
out, seeded, small enough that every test can run it in milliseconds. One definition, so every
test file runs the same network."""

from __future__ import annotations


def tiny_net():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 7, stride=8)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(0)
    return Tiny().eval()
