"""The plan report: live-L1 replay, stages, markdown, and byte-stable PNG plots."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from compiler.report import build_report, plot_names, render_markdown, render_plots, stage_of
from converter.ops import is_host
from hardware.targets import get_target
from passes import cost_model
from passes.pipeline import plan_graph
from passes.summary import summarize
from tests.codegen_graphs import tiny_graph

TARGET = get_target("blackhole-20")


@pytest.fixture(scope="module")
def planned(small_graphs):
    return plan_graph(small_graphs["panoptic_deeplab"], TARGET)


def test_live_l1_replays_moves_spills_and_deallocations() -> None:
    # Worked out by hand from tests/codegen_graphs.tiny_graph at 64x128: a 64x32 bfloat16 shard is
    # 4096 B, the pooled tensor's 32x32 shard on one core 2048 B, the predictor's 64x32 shard 4096 B
    # (its 4 classes widened to 32 channels for the bilinear upsample); bilinear upsamples write height
    # shards: the pool branch's 32x32 on 16 cores 2048 B, the head's 416x32 on 20 cores 26624 B.
    live = {r.plan.name: r.l1_live_per_core for r in build_report(tiny_graph(), TARGET).layers}
    assert live == {
        "normalize": 0,
        "backbone.stem.conv1": 0,
        "backbone.stem.pool": 4096,
        "backbone.res2.0.conv1": 8192,  # pool + conv1
        "backbone.res2.0.conv2": 8192,  # pool spilled to DRAM first: conv1 + conv2
        "backbone.res2.0.add": 12288,  # pool moved back in: conv2 + pool + add
        "sem_seg_head.decoder.res5.project_conv.pool": 4096,
        "sem_seg_head.decoder.res5.project_conv.pool_conv": 4096 + 2048,
        "sem_seg_head.decoder.res5.project_conv.pool_up": 4096 + 2048 + 2048,  # add, pool_conv, pool_up
        "sem_seg_head.decoder.res5.project_conv.cat": 0,  # add moved to DRAM, output in DRAM
        "sem_seg_head.predictor": 4096,
        "sem_seg_head.upsample": 4096 + 26624,
        "ins_embed_head.offset_scale": 26624,  # the semantic output stays in L1 until read
    }


def test_stage_of_detectron2_modules() -> None:
    assert stage_of("") == "pixel normalization"
    assert stage_of("backbone.stem.conv1") == "backbone.stem"
    assert stage_of("backbone.res3.2.conv1") == "backbone.res3"
    assert stage_of("sem_seg_head.decoder.res5.project_conv.convs.0") == "sem_seg_head.decoder.res5"
    assert stage_of("sem_seg_head.predictor") == "sem_seg_head.head"
    assert stage_of("ins_embed_head.center_predictor") == "ins_embed_head.center_head"
    assert stage_of("ins_embed_head.offset_head.1") == "ins_embed_head.offset_head"
    assert stage_of("ins_embed_head") is None  # bare head: joins the stage before it
    assert (
        stage_of("sem_seg_head.decoder.res5.project_conv.convs.3 + ins_embed_head.decoder.res5.project_conv.convs.3")
        == "sem_seg_head.decoder.res5 + ins_embed_head.decoder.res5"
    )


def test_real_plan_report(planned) -> None:
    report = build_report(planned, TARGET)
    device_ops = [n for n in planned if not is_host(n)]
    assert [r.plan.name for r in report.layers] == [n.name for n in device_ops]
    # The replayed live tensors are part of what the planner checked against the budget.
    assert all(r.l1_live_per_core <= r.plan.l1_peak_per_core <= report.budget_per_core for r in report.layers)
    assert any(r.l1_transient_per_core > 0 for r in report.layers if r.plan.op == "conv2d")
    assert [s.stage for s in report.stages()] == [
        "pixel normalization",
        "backbone.stem",
        "backbone.res2",
        "backbone.res3",
        "backbone.res4",
        "backbone.res5",
        "sem_seg_head.decoder.res5 + ins_embed_head.decoder.res5",  # the ASPP convs merged across heads
        "sem_seg_head.decoder.res5",
        "sem_seg_head.decoder.res3",
        "sem_seg_head.decoder.res2",
        "sem_seg_head.head",
        "ins_embed_head.decoder.res5",
        "ins_embed_head.decoder.res3",
        "ins_embed_head.decoder.res2",
        "ins_embed_head.center_head + ins_embed_head.offset_head",  # at 128x256 their first convs merge too
        "ins_embed_head.center_head",
        "ins_embed_head.offset_head",
    ]
    assert sum(s.convs for s in report.stages()) == sum(n.op == "conv2d" for n in planned)
    total = cost_model.evaluate(planned, TARGET)
    assert sum(s.time_us for s in report.stages()) == pytest.approx(total.total_ms * 1e3)
    assert report.dram_bytes == total.dram_bytes
    summary = summarize(planned, TARGET)
    assert (report.l1_peak_per_core, report.activation_bytes_in_l1) == (
        summary.l1_peak_per_core,
        summary.activation_bytes_in_l1,
    )


def test_markdown_lists_every_layer_and_links_the_plots(planned) -> None:
    report = build_report(planned, TARGET)
    text = render_markdown(report)
    assert text.startswith("# panoptic_deeplab on blackhole-20: plan report\n")
    for name in plot_names("panoptic_deeplab").values():
        assert f"]({name})" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()]
    assert len(rows) == len(report.layers)
    first_conv = next(r for r in report.layers if r.plan.op == "conv2d")
    row = rows[first_conv.index].split(" | ")
    assert row[1] == first_conv.plan.name and row[-2] == str(first_conv.dram_bytes)
    assert f"{report.latency_ms:.3f} ms" in text


def test_plots_are_byte_identical_pngs_of_fixed_size() -> None:
    graph = tiny_graph()
    first, second = render_plots(build_report(graph, TARGET)), render_plots(build_report(graph, TARGET))
    assert first == second
    assert set(first) == {"tiny_net.l1.png", "tiny_net.dram.png", "tiny_net.stages.png"}
    sizes = {"tiny_net.l1.png": (1200, 500), "tiny_net.dram.png": (1500, 500)}
    for name, data in first.items():
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            assert "Software" not in image.info  # no matplotlib version stamped in
            if name in sizes:
                assert image.size == sizes[name]


def test_real_peaks_leave_out_convs_whose_buffers_were_not_recorded() -> None:
    """A conv recorded with no circular buffers (ttnn's program cache, or a 1x1 conv as a matmul in NORMAL
    capture) has no comparable real peak; the others take the moves before them (live + own peak)."""
    from compiler.report import real_peaks
    from runtime.ttnn_mock import CheckResult, OpUsage

    ops = [
        OpUsage(1, "to_memory_config", "x_moved", 0, 4096, 4096, 1000),  # a move before conv a: joins it
        OpUsage(2, "conv2d", "a", 8192, 2048, 10240, 500),
        OpUsage(3, "conv2d", "b", 0, 2048, 2048, 500),  # same program as a: cache hit, no CBs recorded
        OpUsage(4, "deallocate", "a", 0, 0, 0, 0),
        OpUsage(5, "add", "c", 0, 1024, 1024, 300),
    ]
    check = CheckResult("m", "blackhole-20", "normal", True, ops=ops)
    assert real_peaks(check, {"a", "b", "c"}) == {"a": 10740, "b": None, "c": 1324}
