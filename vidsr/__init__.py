"""vidsr: upscale videos and images with ESRGAN-family networks."""

__version__ = "0.1.0"
