"""The explorer page (``explore.py``): a trained generator in a browser.

One concern per module, each depending only on the ones above it:

- ``views``: the generator loaded once (:class:`Explorer`) and what each control renders, with
  ``sample.py``'s code paths (:mod:`stylegan.sampling`, :mod:`stylegan.attributes`).
- ``uploads``: which uploaded photos are accepted, and their copy into the run folder.
- ``page``: the Gradio page: controls, events, messages, downloads.
"""

from stylegan.explorer.page import PageDefaults, build_page
from stylegan.explorer.uploads import UploadError, check_upload, keep_upload
from stylegan.explorer.views import Explorer, Settings, View, write_png

__all__ = [
    "Explorer",
    "PageDefaults",
    "Settings",
    "UploadError",
    "View",
    "build_page",
    "check_upload",
    "keep_upload",
    "write_png",
]
