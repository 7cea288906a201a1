"""The layers as the README draws them: the media layer stands without torch, and a library
object leaves the process as it found it (only the command line tunes it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_media_layer_decodes_and_encodes_without_importing_torch(clip, tmp_path):
    code = f"""
import sys
from pathlib import Path
from vidsr.media import EncodeSettings, VideoWriter, decode_batches, finalize, probe
from vidsr.media.remux import count_video_packets
from vidsr.planes import OutputBatch

info = probe(Path({str(clip)!r}))
work = Path({str(tmp_path / "video.nut")!r})
writer = VideoWriter(work, width=info.width, height=info.height, time_base=info.time_base,
                     frame_rate=info.frame_rate, settings=EncodeSettings(preset="veryfast"),
                     pix_fmt="yuv420p", colour=info.colour)
for batch in decode_batches(info, batch_size=4):
    writer.write(OutputBatch(planes=batch.planes, pts=batch.pts, first_index=batch.first_index))
writer.close()
output = Path({str(tmp_path / "copy.mp4")!r})
finalize([work], info, output)
print(count_video_packets(output), "torch" in sys.modules)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    frames, torch_imported = result.stdout.split()
    assert (int(frames), torch_imported) == (24, "False")


def test_building_an_upscaler_leaves_the_process_settings_alone(nearest_model, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TORCHINDUCTOR_CACHE_DIR"}
    env["VIDSR_CACHE_DIR"] = str(tmp_path / "cache")
    code = f"""
import os
import torch
from vidsr.models import load_model_file
from vidsr.upscale import Upscaler
Upscaler(load_model_file({str(nearest_model)!r}), device=torch.device("cpu"), precision="fp32", compile=True)
print(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
"""
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    # torch may name its own default; a library object does not point it into vidsr's cache.
    assert not result.stdout.strip().startswith(str(tmp_path))


def test_the_command_line_keeps_compiled_kernels_in_the_vidsr_cache(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TORCHINDUCTOR_CACHE_DIR"}
    env["VIDSR_CACHE_DIR"] = str(tmp_path / "cache")
    code = """
import os
from vidsr.cli.app import main
try:
    main(["models"])
except SystemExit:
    pass
print(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
"""
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip().splitlines()[-1]) == tmp_path / "cache" / "torch-compile"
