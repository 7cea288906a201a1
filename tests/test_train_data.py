"""Training data: pictures from folders and videos, held-out splits, patches, bad data."""

from __future__ import annotations

import pytest
import torch
from media import ClipSpec, pattern, psnr, write_clip
from PIL import Image

from vidsr.errors import InputError
from vidsr.train.data import PatchSampler, collect_pictures
from vidsr.train.degradations import bicubic_downscale


def write_png(path, width=48, height=40, index=0):
    Image.fromarray(pattern(index, width, height)).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "episode 2").mkdir(parents=True)
    for n in range(6):
        write_png(folder / f"frame{n}.png", index=n)
    for n in range(4):
        write_png(folder / "episode 2" / f"frame{n}.jpg", index=10 + n)
    return folder


def test_folders_are_searched_recursively_and_some_images_held_out(image_folder):
    pictures = collect_pictures([image_folder], min_size=32, val_fraction=0.2)
    assert len(pictures.train) + len(pictures.validation) == 10
    assert len(pictures.validation) == 2 and pictures.held_out
    assert not {p.label for p in pictures.train} & {p.label for p in pictures.validation}
    image = pictures.train[0].load()
    assert image.dtype == torch.uint8 and image.shape == (3, 40, 48)


def test_video_frames_are_sampled_across_the_clip_and_its_end_held_out(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", ClipSpec(frames=24, audio=[]))
    pictures = collect_pictures([clip], min_size=32, frames_per_video=8, val_fraction=0.25)
    assert [p.label.rsplit(" ", 1)[1] for p in pictures.train] == ["0", "3", "6", "9", "12", "15"]
    assert [p.label.rsplit(" ", 1)[1] for p in pictures.validation] == ["18", "21"]
    # Frames arrive as the RGB that was encoded (through the stream's BT.709 matrix).
    frame = pictures.validation[0].load().permute(1, 2, 0).numpy() / 255.0
    assert psnr(frame, pattern(18, 64, 48) / 255.0) > 30


def test_a_single_picture_is_used_for_validation_too_and_says_so(tmp_path):
    write_png(tmp_path / "only.png")
    pictures = collect_pictures([tmp_path / "only.png"], min_size=32)
    assert not pictures.held_out and pictures.validation == pictures.train


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures here")
    with pytest.raises(InputError, match="no images or videos in .*empty"):
        collect_pictures([tmp_path / "empty"], min_size=32)


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(InputError, match="training data not found: .*nowhere"):
        collect_pictures([tmp_path / "nowhere"], min_size=32)


def test_an_unreadable_image_is_named(image_folder):
    (image_folder / "broken.png").write_bytes(b"this is not a png at all")
    with pytest.raises(InputError, match=r"cannot read image .*broken\.png"):
        collect_pictures([image_folder], min_size=32)


def test_a_truncated_image_is_named_before_training(image_folder):
    whole = (image_folder / "frame0.png").read_bytes()
    (image_folder / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cannot read image .*cut\.png"):
        collect_pictures([image_folder], min_size=32)


def test_an_image_smaller_than_the_patch_is_named_with_its_size(image_folder):
    write_png(image_folder / "tiny.png", width=20, height=60)
    with pytest.raises(InputError, match=r"tiny\.png is 20x60, smaller than the 32x32 HR patch.*--patch"):
        collect_pictures([image_folder], min_size=32)


def test_a_video_smaller_than_the_patch_is_refused(tmp_path):
    clip = write_clip(tmp_path / "small.mp4", ClipSpec(frames=4, audio=[]))
    with pytest.raises(InputError, match=r"small\.mp4 is 64x48, smaller than the 64x64"):
        collect_pictures([clip], min_size=64)


def test_a_file_that_is_not_a_video_is_refused(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(InputError, match="notes.mp4"):
        collect_pictures([tmp_path / "notes.mp4"], min_size=32)


def test_bicubic_pairs_are_the_hr_patch_reduced(image_folder):
    pictures = collect_pictures([image_folder], min_size=32)
    sampler = PatchSampler(pictures.train, patch=32, scale=4, degradation="bicubic")
    lr, hr = sampler.batch(5, torch.Generator().manual_seed(0))
    assert hr.shape == (5, 3, 32, 32) and lr.shape == (5, 3, 8, 8)
    assert torch.equal(lr, bicubic_downscale(hr, 4))
    again_lr, again_hr = sampler.batch(5, torch.Generator().manual_seed(0))
    assert torch.equal(hr, again_hr) and torch.equal(lr, again_lr)


def test_augmentation_gives_all_eight_flips_and_rotations(tmp_path):
    write_png(tmp_path / "one.png", width=32, height=32)
    pictures = collect_pictures([tmp_path / "one.png"], min_size=32)
    sampler = PatchSampler(pictures.train, patch=32, scale=4)
    generator = torch.Generator().manual_seed(0)
    variants = {sampler.hr_patch(generator).numpy().tobytes() for _ in range(80)}
    assert len(variants) == 8
