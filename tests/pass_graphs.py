"""Small hand-built IR graphs and an fp32 reference evaluator for the pass unit tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from converter.ir import Graph, Node, TensorInfo


class GraphBuilder:
    """Appends nodes in program order; shapes follow the ops' NCHW rules."""

    def __init__(self, shape: tuple[int, int, int, int], seed: int = 0):
        self.gen = torch.Generator().manual_seed(seed)
        self.nodes: list[Node] = [Node("input", "input", (), TensorInfo(shape), "input")]

    def _shape(self, name: str) -> tuple[int, ...]:
        return next(n.out.shape for n in self.nodes if n.name == name)

    def _add(self, name, op, inputs, shape, attrs=None, params=None, source=None) -> str:
        self.nodes.append(
            Node(name, op, tuple(inputs), TensorInfo(tuple(shape)), source or name, attrs or {}, params or {})
        )
        return name

    def conv(
        self, name, x, out_channels, k=3, stride=1, padding=None, dilation=1, groups=1, bias=True, activation=None
    ) -> str:
        n, c, h, w = self._shape(x)
        padding = (k // 2) * dilation if padding is None else padding
        oh = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
        ow = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
        params = {"weight": torch.randn(out_channels, c // groups, k, k, generator=self.gen) * 0.2}
        if bias:
            params["bias"] = torch.randn(out_channels, generator=self.gen) * 0.1
        attrs = dict(
            in_channels=c,
            out_channels=out_channels,
            kernel_size=(k, k),
            stride=(stride, stride),
            padding=(padding, padding),
            dilation=(dilation, dilation),
            groups=groups,
            activation=activation,
        )
        return self._add(name, "conv2d", [x], (n, out_channels, oh, ow), attrs, params)

    def bn(self, name, x, eps=1e-5) -> str:
        c = self._shape(x)[1]
        g = self.gen
        params = {
            "weight": torch.rand(c, generator=g) + 0.5,
            "bias": torch.randn(c, generator=g) * 0.1,
            "running_mean": torch.randn(c, generator=g) * 0.1,
            "running_var": torch.rand(c, generator=g) + 0.5,
        }
        return self._add(name, "batch_norm", [x], self._shape(x), {"eps": eps}, params)

    def relu(self, name, x) -> str:
        return self._add(name, "relu", [x], self._shape(x))

    def add(self, name, a, b) -> str:
        return self._add(name, "add", [a, b], self._shape(a), {"activation": None})

    def mul(self, name, x, k) -> str:
        return self._add(name, "mul_scalar", [x], self._shape(x), {"scalar": k})

    def upsample(self, name, x, s, mode="bilinear") -> str:
        n, c, h, w = self._shape(x)
        return self._add(
            name, "upsample", [x], (n, c, h * s, w * s), {"scale_factor": (s, s), "mode": mode, "align_corners": False}
        )

    def concat(self, name, xs) -> str:
        n, _, h, w = self._shape(xs[0])
        c = sum(self._shape(x)[1] for x in xs)
        return self._add(name, "concat", xs, (n, c, h, w), {"dim": 1})

    def maxpool(self, name, x, k=3, stride=2, padding=1) -> str:
        n, c, h, w = self._shape(x)
        oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        return self._add(
            name,
            "max_pool2d",
            [x],
            (n, c, oh, ow),
            {
                "kernel_size": (k, k),
                "stride": (stride, stride),
                "padding": (padding, padding),
                "dilation": (1, 1),
                "ceil_mode": False,
            },
        )

    def gap(self, name, x) -> str:
        n, c, _, _ = self._shape(x)
        return self._add(name, "global_avg_pool2d", [x], (n, c, 1, 1))

    def graph(self, outputs: dict[str, str]) -> Graph:
        return Graph(tuple(self.nodes), outputs, {"variant": "test"})


def evaluate(graph: Graph, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """fp32 reference semantics of the IR ops used in these tests."""
    env: dict[str, torch.Tensor] = {}
    for n in graph.nodes:
        a = [env[i] for i in n.inputs]
        if n.op == "input":
            y = x
        elif n.op == "conv2d":
            y = F.conv2d(
                a[0],
                n.params["weight"],
                n.params.get("bias"),
                n.attrs["stride"],
                n.attrs["padding"],
                n.attrs["dilation"],
                n.attrs["groups"],
            )
            y = F.relu(y) if n.attrs["activation"] == "relu" else y
        elif n.op == "batch_norm":
            p = n.params
            y = F.batch_norm(
                a[0], p["running_mean"], p["running_var"], p["weight"], p["bias"], False, 0.0, n.attrs["eps"]
            )
        elif n.op == "relu":
            y = F.relu(a[0])
        elif n.op == "add":
            y = a[0] + a[1]
            y = F.relu(y) if n.attrs["activation"] == "relu" else y
        elif n.op == "mul_scalar":
            y = a[0] * n.attrs["scalar"]
        elif n.op == "upsample":
            y = F.interpolate(
                a[0],
                scale_factor=n.attrs["scale_factor"],
                mode=n.attrs["mode"],
                align_corners=False if n.attrs["mode"] == "bilinear" else None,
            )
        elif n.op == "concat":
            y = torch.cat(a, dim=1)
        elif n.op == "max_pool2d":
            y = F.max_pool2d(a[0], n.attrs["kernel_size"], n.attrs["stride"], n.attrs["padding"])
        elif n.op == "global_avg_pool2d":
            y = a[0].mean(dim=(2, 3), keepdim=True)
        else:
            raise NotImplementedError(n.op)
        env[n.name] = y
    return {head: env[name] for head, name in graph.outputs.items()}
