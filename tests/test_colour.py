"""YUV <-> RGB in torch: the colours a user sees depend on the matrix, the range and the bit depth.

Checked three ways: round trips on smooth content for every matrix, range, depth and
subsampling; code values the standards fix (black, white, neutral chroma, Kr); and agreement
with an independent conversion by swscale, which a wrong matrix measurably fails.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from media import ACCURATE_SWSCALE, pattern, psnr

from vidsr.planes import ColourSpec, PlaneLayout
from vidsr.upscale.colour import planes_to_rgb, rgb_to_planes, sample_dtype

MATRICES = ("bt601", "bt709", "bt2020")
KR = {"bt601": 0.299, "bt709": 0.2126, "bt2020": 0.2627}  # from the standards, not from vidsr
SWS_COLORSPACE = {"bt601": 5, "bt709": 1, "bt2020": 9}  # FFmpeg's AVColorSpace
SUBSAMPLING = {"4:2:0": (1, 1), "4:2:2": (1, 0), "4:4:4": (0, 0)}

# Round-trip PSNR floors (dB), measured on `pattern` frames with about 3 dB of margin.
# 4:4:4 is limited by quantisation alone (8-bit ~53, 10-bit ~65); subsampled chroma by the
# filter on the saturated patches (4:2:2 ~48.5, 4:2:0 ~46.5, whatever the depth).
ROUND_TRIP_FLOOR = {
    ("4:4:4", 8): 50.0,
    ("4:4:4", 10): 61.0,
    ("4:2:2", 8): 45.5,
    ("4:2:2", 10): 45.5,
    ("4:2:0", 8): 43.5,
    ("4:2:0", 10): 43.5,
}


def rgb_batch(*indices: int, width: int = 64, height: int = 48) -> torch.Tensor:
    """`pattern` frames as RGB 0..1, B x 3 x H x W, with 16-bit precision."""
    frames = [pattern(index, width, height, deep=True) for index in indices]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 65535.0


def solid(rgb: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).reshape(1, 3, 1, 1).expand(1, 3, 4, 4).contiguous()


def codes(planes) -> tuple[int, int, int]:
    """The (Y, Cb, Cr) code values of a flat frame."""
    values = tuple(int(plane.unique().item()) for plane in planes)
    assert all(plane.unique().numel() == 1 for plane in planes)
    return values  # type: ignore[return-value]


def flat_planes(y: int, cb: int, cr: int, layout: PlaneLayout) -> tuple[torch.Tensor, ...]:
    return tuple(torch.full((1, 4, 4), value, dtype=torch.int32).to(sample_dtype(layout)) for value in (y, cb, cr))


# ---- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("subsampling", SUBSAMPLING)
@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("full_range", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", MATRICES)
def test_rgb_survives_a_round_trip_through_planes(matrix, full_range, bit_depth, subsampling):
    layout = PlaneLayout(kind="yuv", bit_depth=bit_depth, chroma_shift=SUBSAMPLING[subsampling])
    spec = ColourSpec(matrix=matrix, full_range=full_range)
    rgb = rgb_batch(0, 7)
    planes = rgb_to_planes(rgb, layout, spec)
    shift_x, shift_y = layout.chroma_shift
    chroma = (2, 48 >> shift_y, 64 >> shift_x)
    assert [tuple(p.shape) for p in planes] == [(2, 48, 64), chroma, chroma]
    assert all(p.dtype == sample_dtype(layout) for p in planes)
    assert max(int(p.max()) for p in planes) <= layout.max_code
    back = planes_to_rgb(planes, layout, spec)
    assert back.shape == rgb.shape and back.dtype == torch.float32
    for frame_back, frame in zip(back, rgb):  # each frame of the batch on its own
        assert psnr(frame_back.numpy(), frame.numpy()) > ROUND_TRIP_FLOOR[(subsampling, bit_depth)]


def test_ten_bits_keep_finer_steps_than_eight():
    spec = ColourSpec(matrix="bt709", full_range=False)
    rgb = rgb_batch(3)
    quality = {
        depth: psnr(planes_to_rgb(rgb_to_planes(rgb, layout, spec), layout, spec).numpy(), rgb.numpy())
        for depth, layout in ((d, PlaneLayout(kind="yuv", bit_depth=d, chroma_shift=(0, 0))) for d in (8, 10))
    }
    assert quality[10] > quality[8] + 8.0  # two more bits: ~12 dB measured


@pytest.mark.parametrize("subsampling", SUBSAMPLING)
def test_odd_frame_sizes_round_trip_with_rounded_up_chroma(subsampling):
    layout = PlaneLayout(kind="yuv", bit_depth=8, chroma_shift=SUBSAMPLING[subsampling])
    spec = ColourSpec(matrix="bt601", full_range=False)
    rgb = rgb_batch(2, width=63, height=47)
    planes = rgb_to_planes(rgb, layout, spec)
    shift_x, shift_y = layout.chroma_shift
    chroma = (1, -(-47 >> shift_y), -(-63 >> shift_x))  # ceil: 4:2:0 of 63x47 is 32x24
    assert [tuple(p.shape) for p in planes] == [(1, 47, 63), chroma, chroma]
    back = planes_to_rgb(planes, layout, spec)
    assert back.shape == (1, 3, 47, 63)
    assert psnr(back.numpy(), rgb.numpy()) > ROUND_TRIP_FLOOR[(subsampling, 8)]


# ---- code values the standards fix ---------------------------------------------------------------


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize(
    ("bit_depth", "full_range", "black", "white", "neutral"),
    [
        (8, False, 16, 235, 128),
        (10, False, 64, 940, 512),
        (8, True, 0, 255, 128),
        (10, True, 0, 1023, 512),
    ],
    ids=["8bit-limited", "10bit-limited", "8bit-full", "10bit-full"],
)
def test_black_white_and_grey_have_their_standard_codes(matrix, bit_depth, full_range, black, white, neutral):
    layout = PlaneLayout(kind="yuv", bit_depth=bit_depth, chroma_shift=(1, 1))
    spec = ColourSpec(matrix=matrix, full_range=full_range)
    assert codes(rgb_to_planes(solid((0.0, 0.0, 0.0)), layout, spec)) == (black, neutral, neutral)
    assert codes(rgb_to_planes(solid((1.0, 1.0, 1.0)), layout, spec)) == (white, neutral, neutral)
    # and back: those codes are black and white, with no colour cast (to float32 rounding)
    for code, level in ((black, 0.0), (white, 1.0)):
        rgb = planes_to_rgb(flat_planes(code, neutral, neutral, layout), layout, spec)
        torch.testing.assert_close(rgb, torch.full((1, 3, 4, 4), level), atol=1e-6, rtol=0.0)


@pytest.mark.parametrize("matrix", MATRICES)
def test_pure_red_has_the_luma_of_the_matrix_kr(matrix):
    kr = KR[matrix]
    deep = PlaneLayout(kind="yuv", bit_depth=16, chroma_shift=(0, 0))
    y, _, cr = codes(rgb_to_planes(solid((1.0, 0.0, 0.0)), deep, ColourSpec(matrix=matrix, full_range=True)))
    assert y / 65535 == pytest.approx(kr, abs=1 / 65535)
    assert cr == 65535  # red is as far along Cr as colour goes
    ten_bit = PlaneLayout(kind="yuv", bit_depth=10, chroma_shift=(0, 0))
    y, cb, cr = codes(rgb_to_planes(solid((1.0, 0.0, 0.0)), ten_bit, ColourSpec(matrix=matrix, full_range=False)))
    assert y == round(64 + 876 * kr)
    assert cr == 960  # the top of 10-bit limited chroma
    _, cb, _ = codes(rgb_to_planes(solid((0.0, 0.0, 1.0)), ten_bit, ColourSpec(matrix=matrix, full_range=False)))
    assert cb == 960  # and blue as far along Cb


def test_codes_outside_the_limited_range_clip_instead_of_wrapping():
    layout = PlaneLayout(kind="yuv", bit_depth=8, chroma_shift=(0, 0))
    spec = ColourSpec(matrix="bt709", full_range=False)
    assert torch.equal(planes_to_rgb(flat_planes(0, 128, 128, layout), layout, spec), torch.zeros(1, 3, 4, 4))
    assert torch.equal(planes_to_rgb(flat_planes(255, 128, 128, layout), layout, spec), torch.ones(1, 3, 4, 4))
    extreme = planes_to_rgb(flat_planes(255, 0, 255, layout), layout, spec)
    assert float(extreme.min()) >= 0.0 and float(extreme.max()) <= 1.0


# ---- agreement with swscale ----------------------------------------------------------------------


def swscale_yuv444(matrix: str, full_range: bool, pix_fmt: str) -> av.VideoFrame:
    """A 4:4:4 frame of `pattern`, made by swscale from 16-bit RGB."""
    source = av.VideoFrame.from_ndarray(pattern(5, 64, 48, deep=True), format="rgb48le")
    return source.reformat(
        format=pix_fmt,
        dst_colorspace=SWS_COLORSPACE[matrix],
        dst_color_range=2 if full_range else 1,
        interpolation=ACCURATE_SWSCALE,
    )


def frame_planes(frame: av.VideoFrame, dtype: np.dtype) -> tuple[torch.Tensor, ...]:
    """The frame's three planes, 1 x H x W, without FFmpeg's line padding (read with numpy, not vidsr)."""
    planes = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)[:, : plane.width]
        planes.append(torch.from_numpy(rows.astype(np.int32))[None])
    return tuple(planes)


def as_image(rgb: torch.Tensor) -> np.ndarray:
    return rgb[0].permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize(("pix_fmt", "bit_depth"), [("yuv444p", 8), ("yuv444p10le", 10)])
@pytest.mark.parametrize("full_range", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("reference_format", ["gbrpf32le", "rgb48le"])
def test_yuv_to_rgb_agrees_with_swscale_and_a_wrong_matrix_does_not(
    matrix, full_range, pix_fmt, bit_depth, reference_format
):
    frame = swscale_yuv444(matrix, full_range, pix_fmt)
    reference = frame.reformat(
        format=reference_format,
        src_colorspace=SWS_COLORSPACE[matrix],
        src_color_range=2 if full_range else 1,
        interpolation=ACCURATE_SWSCALE,
    ).to_ndarray()
    reference = np.clip(reference.astype(np.float64) / (65535.0 if reference_format == "rgb48le" else 1.0), 0.0, 1.0)
    planes = frame_planes(frame, np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2"))
    layout = PlaneLayout(kind="yuv", bit_depth=bit_depth, chroma_shift=(0, 0))

    def read_as(spec: ColourSpec) -> float:
        return psnr(as_image(planes_to_rgb(planes, layout, spec)), reference)

    # ~53.5 dB measured: swscale's limited-range output peaks at 254/255, not 1.0 (its gain, not
    # vidsr's); full-range 10-bit agrees to ~65 dB.
    agreement = read_as(ColourSpec(matrix=matrix, full_range=full_range))
    assert agreement > 50.0
    for wrong in MATRICES:
        if wrong != matrix:  # the closest pair, bt709 and bt2020, still differs by ~18 dB
            assert read_as(ColourSpec(matrix=wrong, full_range=full_range)) < agreement - 10.0
    assert read_as(ColourSpec(matrix=matrix, full_range=not full_range)) < agreement - 10.0


# ---- planar RGB ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_gbr_planes_are_read_as_green_blue_red(bit_depth):
    layout = PlaneLayout(kind="gbr", bit_depth=bit_depth, chroma_shift=(0, 0))
    top = layout.max_code
    green, blue, red = (round(top * f) for f in (0.8, 0.4, 0.2))
    planes = flat_planes(green, blue, red, layout)
    for spec in (ColourSpec(matrix="bt601", full_range=False), ColourSpec(matrix="bt2020", full_range=True)):
        rgb = planes_to_rgb(planes, layout, spec)  # no matrix and no range apply to RGB
        assert rgb.shape == (1, 3, 4, 4)
        assert rgb[0, :, 0, 0].tolist() == pytest.approx([red / top, green / top, blue / top], abs=1e-6)


def test_gbr_planes_of_a_real_image_give_back_the_image():
    image = pattern(1, 64, 48)  # uint8 RGB, H x W x 3
    planes = tuple(torch.from_numpy(image[..., channel].copy())[None] for channel in (1, 2, 0))
    rgb = planes_to_rgb(planes, PlaneLayout(kind="gbr", bit_depth=8, chroma_shift=(0, 0)), ColourSpec("bt709", False))
    assert np.array_equal(np.round(as_image(rgb) * 255).astype(np.uint8), image)


def test_output_planes_must_be_yuv():
    with pytest.raises(ValueError, match="YUV"):
        rgb_to_planes(solid((0.5, 0.5, 0.5)), PlaneLayout("gbr", 8, (0, 0)), ColourSpec("bt709", False))


@pytest.mark.parametrize(
    ("bit_depth", "array_dtype", "tensor_dtype", "max_code"),
    [(8, np.uint8, torch.uint8, 255), (10, np.uint16, torch.int16, 1023), (16, np.uint16, torch.int32, 65535)],
)
def test_plane_layout_holds_every_code_of_its_depth(bit_depth, array_dtype, tensor_dtype, max_code):
    layout = PlaneLayout(kind="yuv", bit_depth=bit_depth)
    assert layout.dtype == array_dtype and sample_dtype(layout) == tensor_dtype and layout.max_code == max_code
    assert np.array(max_code).astype(layout.dtype).item() == max_code  # no wrap
    assert torch.tensor(max_code).to(sample_dtype(layout)).item() == max_code  # no wrap into negatives
