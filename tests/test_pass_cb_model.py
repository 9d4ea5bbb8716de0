"""cb_model: hand-computed circular-buffer sizes for small conv geometries."""

from passes import cb_model

BASE = dict(batch=1, input_hw=(64, 64), in_channels=64, out_channels=64, kernel_size=(3, 3),
            stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, shard_layout="HEIGHT_SHARDED",
            grid=(8, 8), num_cores=64, act_block_h=0, act_block_w_div=1, input_dtype="bfloat16",
            weights_dtype="bfloat16", output_dtype="bfloat16", enable_act_double_buffer=False,
            enable_weights_double_buffer=False, fp32_dest_acc=False, num_slices=0)


def test_height_sharded_3x3_by_hand():
    # 4096 output rows = 128 tiles over 64 cores -> 2 tiles/core; 64 out ch -> 2 tiles.
    # act block: 2 x (64*3/32=6) = 12 tiles; weights 2 x 6 = 12 tiles; bias 2 tiles; +64 scratch.
    bf16 = 2048
    assert cb_model.conv2d_cb_bytes(**BASE) == 12 * bf16 + 12 * bf16 + 12 * bf16 + 2 * bf16 + 64


def test_bf8_weights_use_1088_byte_tiles():
    got = cb_model.conv2d_cb_bytes(**{**BASE, "weights_dtype": "bfloat8_b"})
    assert got == 12 * 1088 + 12 * 2048 + 12 * 2048 + 2 * 1088 + 64


def test_smaller_act_block_keeps_all_kernel_rows_of_weights():
    # act_block_h 32 -> 1 tile, 2 blocks along h -> ttnn buffers kh=3 weight blocks.
    got = cb_model.conv2d_cb_bytes(**{**BASE, "act_block_h": 32})
    assert got == 36 * 2048 + 6 * 2048 + 6 * 2048 + 2 * 2048 + 64


def test_double_buffering_doubles_act_block():
    single = cb_model.conv2d_cb_bytes(**BASE)
    double = cb_model.conv2d_cb_bytes(**{**BASE, "enable_act_double_buffer": True})
    assert double - single == 12 * 2048


def test_slicing_shrinks_cbs_and_halo():
    big = dict(BASE, input_hw=(256, 256), num_cores=20, grid=(5, 4))
    assert cb_model.conv2d_cb_bytes(**{**big, "num_slices": 4}) < cb_model.conv2d_cb_bytes(**big)
    halo_args = dict(batch=1, input_hw=(256, 256), channels=64, kernel_size=(3, 3), stride=(1, 1),
                     padding=(1, 1), dilation=(1, 1), shard_layout="HEIGHT_SHARDED", grid=(5, 4),
                     num_cores=20, dtype="bfloat16")
    assert cb_model.halo_bytes(**halo_args, num_slices=4) < cb_model.halo_bytes(**halo_args, num_slices=0)


def test_halo_is_zero_for_pointwise_conv_and_covers_the_shard_otherwise():
    args = dict(batch=1, input_hw=(64, 64), channels=64, kernel_size=(1, 1), stride=(1, 1),
                padding=(0, 0), dilation=(1, 1), shard_layout="HEIGHT_SHARDED", grid=(8, 8),
                num_cores=64, dtype="bfloat16", num_slices=0)
    assert cb_model.halo_bytes(**args) == 0
    # 3x3: 64 output rows per core = 1 image row -> (1+1)*1 + 2 = 4 padded rows of 66 sticks of 128 B
    got = cb_model.halo_bytes(**{**args, "kernel_size": (3, 3), "padding": (1, 1)})
    assert got == 4 * 66 * 64 * 2


def test_width_sharding_splits_the_inner_dim():
    args = {**BASE, "input_hw": (32, 64), "in_channels": 2048, "out_channels": 256,
            "kernel_size": (1, 1), "padding": (0, 0), "shard_layout": "WIDTH_SHARDED"}
    b = cb_model.conv_blocks(**{k: v for k, v in args.items() if k not in (
        "groups", "input_dtype", "weights_dtype", "output_dtype", "enable_act_double_buffer",
        "enable_weights_double_buffer", "fp32_dest_acc")})
    assert b.in_channels_per_core == 32 and b.act_block_w_ntiles == 1 and b.out_h_ntiles == 64
