"""Data without downloads: loaders for what ships with installed packages, procedural
generators, and loaders for a user's own folders. One module per source.

- ``images``: a user's image folder (any chapter), with errors that name the file.
- ``digits``: scikit-learn's 8x8 digits as tensors, with a fixed split.
- ``cifar``: a CIFAR-10 python-pickle folder (RandWire's full profile).
- ``multimnist``: two overlapping digits on one canvas (multitask).
- ``clevr``, ``clevr_questions``: a procedurally generated CLEVR-like world (MAC);
  ``clevr_folder``: the real CLEVR v1.0 folder behind the same interface.
- ``art``, ``photos``: procedural abstract art and crops of bundled photographs (GANs).
- ``text``: a user's text file, CPython's ``pydoc_data`` topics and the licence texts
  installed packages ship (GPT-2).
"""
