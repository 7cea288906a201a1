"""The command line: thin commands over the library, one red line for every user error.

``app`` gathers the commands (``render``: the video render; ``models``: listing and blending
models; ``inspect``: frames, images, info; ``train``); ``console`` is what they share. The only
layer that prints. The entry point is :func:`vidsr.cli.app.main`.
"""
