"""moderndl: an executable research book on modern deep learning.

The core (``profiles``, ``ledger``, ``seed``, ``train``, ``run``, ``data``) is shared by
every chapter; each chapter is one package (``zero``, ``randwire``, ``mac``, ``gpt2``,
``gan``, ``multitask``) that depends on the core and never on another chapter.
"""

__version__ = "0.1.0"
