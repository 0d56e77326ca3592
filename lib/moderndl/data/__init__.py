"""Data without downloads: loaders for what ships with installed packages, procedural
generators, and loaders for a user's own folders. One module per source.

- ``images``: a user's image folder (any chapter), with errors that name the file.
- ``digits``: scikit-learn's 8x8 digits as tensors, with a fixed split.
"""
