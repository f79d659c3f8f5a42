"""napari dock widgets. They only translate between the viewer and the core (no logic of their own).

Long work runs in :func:`napari_ultramn._widgets.workers.start`, which honours
``ULTRAMN_SYNC_WORKERS=1`` (tests) by running the same generator synchronously.
"""
