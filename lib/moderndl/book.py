"""What a chapter shows its reader beside its own cells: a library object's source.

The book itself is staged by :mod:`moderndl.stage`; this module is what notebooks import,
so it stays small (a notebook's cache key covers every library module it imports).
"""

from __future__ import annotations

import inspect
from typing import Any


def show_source(obj: Any) -> None:
    """Show a library object's source in the notebook as a highlighted code block."""
    from IPython.display import Markdown, display

    display(Markdown("```python\n" + inspect.getsource(obj).rstrip() + "\n```"))
