"""Data that several chapters share, without downloads. One module per source.

- ``images``: a user's image folder (any chapter), with errors that name the file.
- ``digits``: scikit-learn's 8x8 digits as tensors, with a fixed split.
- ``text``: a user's text file, CPython's ``pydoc_data`` topics and the licence texts
  installed packages ship.

Data that belongs to one paper lives in that paper's package: the CLEVR-like world in
``moderndl.mac``, MultiMNIST in ``moderndl.multitask``, the art and photo sets in
``moderndl.gan``, CIFAR-10 folders in ``moderndl.randwire``.
"""
