"""The napari front end of DEQ Explorer: panels, background workers, plots, samples.

This sub-package is the only place that imports napari, qtpy or magicgui. The
manifest (``napari.yaml``) points at the widget factories in
:mod:`deq_explorer._napari.panels`, the samples in
:mod:`deq_explorer._napari.samples` and the launcher in
:mod:`deq_explorer._napari.launch`.
"""
