"""A Panoptic-DeepLab-style TTNN module with six planted API mistakes (api facts §4.1)."""
import ttnn


def forward(x, w, device):
    ok = ttnn.Conv2dConfig(weights_dtype=ttnn.bfloat8_b, activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU))
    bad_activation = ttnn.Conv2dConfig(activation="relu")
    bad_field = ttnn.Conv2dConfig(enable_split_reader=True)
    grid = ttnn.CoreGrid(8, 8)
    compute = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi5)
    y = ttnn.conv2d(x, w, device, 3, 64, 1, 128, 256, (3, 3))
    z = ttnn.upsample(y, 4, mode="bilinear", align_corners=False)
    return ok, bad_activation, bad_field, grid, compute, z
