"""The explorer page (``explore.py``): a trained generator in a browser.

One concern per module, each depending only on the ones above it:

- ``views``: the generator loaded once (:class:`Explorer`) and what each control renders, with
  ``sample.py``'s code paths (:mod:`stylegan.sampling`, :mod:`stylegan.attributes`).
- ``uploads``: which uploaded photos are accepted, and their copy into the run folder.
- ``handlers``: what each event does (render, write the files, project an upload in a thread).
- ``page``: the Gradio page: the controls and their events.
"""

from stylegan.explorer.handlers import ProjectionOptions
from stylegan.explorer.page import PageDefaults, build_page
from stylegan.explorer.uploads import UploadError, check_upload, keep_upload
from stylegan.explorer.views import Explorer, Settings, View, write_latent, write_png

__all__ = [
    "Explorer",
    "PageDefaults",
    "ProjectionOptions",
    "Settings",
    "UploadError",
    "View",
    "build_page",
    "check_upload",
    "keep_upload",
    "write_latent",
    "write_png",
]
