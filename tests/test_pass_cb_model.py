"""cb_model: properties and hand-computed halo and block sizes for small conv geometries.

The conv's circular-buffer bytes are checked against real ttnn, not by hand: tests/test_l1_model_conv.py.
"""

from passes import cb_model

BASE = dict(
    batch=1,
    input_hw=(64, 64),
    in_channels=64,
    out_channels=64,
    kernel_size=(3, 3),
    stride=(1, 1),
    padding=(1, 1),
    dilation=(1, 1),
    groups=1,
    shard_layout="HEIGHT_SHARDED",
    grid=(8, 8),
    num_cores=64,
    act_block_h=0,
    act_block_w_div=1,
    input_dtype="bfloat16",
    weights_dtype="bfloat16",
    output_dtype="bfloat16",
    enable_act_double_buffer=False,
    enable_weights_double_buffer=False,
    fp32_dest_acc=False,
    num_slices=0,
)


def test_slicing_shrinks_each_slices_cbs_halo_and_output():
    big = dict(BASE, input_hw=(256, 256), num_cores=20, grid=(5, 4), device_grid=(5, 4))
    whole = cb_model.conv2d_l1(**big)
    quarter = cb_model.conv2d_l1(**{**big, "num_slices": 4, "slice_type": "DRAM_SLICE_WIDTH"})
    assert quarter.cb < whole.cb and quarter.halo < whole.halo and quarter.output < whole.output
    halo_args = dict(
        batch=1,
        input_hw=(256, 256),
        channels=64,
        kernel_size=(3, 3),
        stride=(1, 1),
        padding=(1, 1),
        dilation=(1, 1),
        shard_layout="HEIGHT_SHARDED",
        grid=(5, 4),
        num_cores=20,
        dtype="bfloat16",
    )
    assert cb_model.halo_bytes(**halo_args, num_slices=4) < cb_model.halo_bytes(**halo_args, num_slices=0)


def test_halo_is_zero_for_pointwise_conv_and_covers_the_shard_otherwise():
    args = dict(
        batch=1,
        input_hw=(64, 64),
        channels=64,
        kernel_size=(1, 1),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        shard_layout="HEIGHT_SHARDED",
        grid=(8, 8),
        num_cores=64,
        dtype="bfloat16",
        num_slices=0,
    )
    assert cb_model.halo_bytes(**args) == 0
    # 3x3: 64 output rows per core = 1 image row -> (1+1)*1 + 2 = 4 padded rows of 66 sticks of 128 B
    got = cb_model.halo_bytes(**{**args, "kernel_size": (3, 3), "padding": (1, 1)})
    assert got == 4 * 66 * 64 * 2


def test_width_sharding_splits_the_inner_dim():
    args = {
        **BASE,
        "input_hw": (32, 64),
        "in_channels": 2048,
        "out_channels": 256,
        "kernel_size": (1, 1),
        "padding": (0, 0),
        "shard_layout": "WIDTH_SHARDED",
    }
    b = cb_model.conv_blocks(
        **{
            k: v
            for k, v in args.items()
            if k
            not in (
                "groups",
                "input_dtype",
                "weights_dtype",
                "output_dtype",
                "enable_act_double_buffer",
                "enable_weights_double_buffer",
                "fp32_dest_acc",
            )
        }
    )
    assert b.in_channels_per_core == 32 and b.act_block_w_ntiles == 1 and b.out_h_ntiles == 64
