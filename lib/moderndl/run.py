"""``python -m moderndl run <name>``: execute one chapter with papermill, cached.

- The notebook's ``parameters`` cell defines the valid ``-p`` names; an unknown name is an
  error listing them (papermill alone would inject it silently).
- The cache key hashes the notebook, every library source file, the parameters and the
  resolved profile. When it matches, nothing is executed: the outputs on disk came from
  exactly the code they show.
- A failing cell names the notebook, the cell and the exception, keeps the partial
  notebook under ``_build/executed/`` and exits non-zero.
- After a run, the sidecar ``_build/metrics/<name>.json`` gets the wall time, and the
  executed notebook gets a provenance header (profile, device, wall time, commit, date,
  torch) right under its title.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from moderndl import ledger, paths, profiles

KERNEL = "moderndl"


class RunError(Exception):
    """A user-facing failure of the runner; the CLI prints it and exits 1."""


# -- finding notebooks and their parameters ---------------------------------------
def notebooks_dir() -> Path:
    return paths.root() / "notebooks"


def available() -> list[str]:
    """Chapter names: the ``.ipynb`` files in ``notebooks/``."""
    return sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))


def locate(name: str) -> Path:
    """A chapter name, or a path to any ``.ipynb`` (the test fixtures use that)."""
    path = Path(name)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise RunError(f"no notebook at {path}")
        return path.resolve()
    candidate = notebooks_dir() / f"{name}.ipynb"
    if not candidate.is_file():
        valid = ", ".join(available()) or "(none yet)"
        raise RunError(f"unknown notebook {name!r}; valid notebooks: {valid}")
    return candidate


def parameters(path: Path) -> dict[str, Any]:
    """The names and defaults of the notebook's ``parameters`` cell."""
    import papermill

    found = papermill.inspect_notebook(str(path))
    if not found:
        raise RunError(f"{path.name} has no cell tagged 'parameters'")
    return {k: v["default"] for k, v in found.items()}


def validate(path: Path, given: Mapping[str, Any]) -> None:
    valid = parameters(path)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise RunError(f"{path.stem}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {', '.join(valid)}")


# -- cache ----------------------------------------------------------------------------
def library_dir() -> Path:
    """The library whose sources key the cache: this package, or ``$MODERNDL_LIB`` (tests)."""
    return Path(os.environ.get("MODERNDL_LIB") or Path(__file__).resolve().parent)


def library_files() -> list[Path]:
    lib = library_dir()
    return sorted(p for p in lib.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".yml", ".json")
                  and "__pycache__" not in p.parts)


def cache_key(path: Path, params: Mapping[str, Any], profile: str) -> str:
    """sha256 of the notebook, the library sources, the parameters and the profile."""
    h = hashlib.sha256()
    h.update(path.read_bytes())
    lib = library_dir()
    for f in library_files():
        h.update(str(f.relative_to(lib)).encode())
        h.update(f.read_bytes())
    h.update(json.dumps(dict(params), sort_keys=True, default=str).encode())
    h.update(profile.encode())
    return h.hexdigest()


def outputs(name: str) -> tuple[Path, Path, Path]:
    """Executed notebook, sidecar, cache key file."""
    build = paths.build()
    return build / "executed" / f"{name}.ipynb", build / "metrics" / f"{name}.json", build / "cache" / f"{name}.key"


# -- running -------------------------------------------------------------------------
def run(name: str, profile: str = "auto", params: Mapping[str, Any] | None = None, *, force: bool = False,
        log=print) -> dict[str, Any]:
    """Execute (or reuse) one notebook; return its sidecar dict (with ``cached``)."""
    params = dict(params or {})
    path = locate(name)
    stem = path.stem
    if "profile" in params:
        raise RunError("give the profile with --profile, not -p profile")
    validate(path, params)
    resolved = profiles.resolve(profile)
    executed, sidecar, keyfile = outputs(stem)
    key = cache_key(path, params, resolved)
    if not force and keyfile.is_file() and keyfile.read_text() == key and executed.is_file() and sidecar.is_file():
        log(f"{stem}: cached ({resolved})")
        return {**ledger.load(sidecar), "cached": True}

    for p in (executed, sidecar, keyfile):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.unlink(missing_ok=True)
    log(f"{stem}: executing at profile {resolved} ...")
    started = time.perf_counter()
    _execute(path, executed, sidecar, {**params, "profile": resolved})
    wall = round(time.perf_counter() - started, 2)

    data = ledger.load(sidecar) if sidecar.is_file() else ledger.new_sidecar(stem, resolved)
    data.update(wall_s=wall, parameters=params)
    sidecar.write_text(json.dumps(data, indent=2))
    _add_provenance(executed, data)
    keyfile.write_text(key)
    failed = [c["id"] for c in data["claims"] if ledger.asserted(c) and not c["holds"]]
    log(f"{stem}: done in {wall:.1f} s; {len(data['claims'])} claims" + (f", NOT holding: {failed}" if failed else ""))
    return {**data, "cached": False}


def _execute(path: Path, executed: Path, sidecar: Path, params: Mapping[str, Any]) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    ensure_kernel()
    env = {"MODERNDL_METRICS": str(sidecar), "MODERNDL_ROOT": str(paths.root()), "PYTHONHASHSEED": "0"}
    if not _cuda_available() and "DS_ACCELERATOR" not in os.environ:
        env["DS_ACCELERATOR"] = "cpu"  # else DeepSpeed, probed by accelerate, warns into every page
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(path), str(executed), parameters=dict(params), kernel_name=KERNEL,
                                   cwd=str(path.parent), progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        first = next((ln for ln in err.source.splitlines() if ln.strip()), "")
        raise RunError(
            f"{path.stem}: cell {err.cell_index} (execution count {err.exec_count}) failed with "
            f"{err.ename}: {err.evalue}\n  cell begins: {first}\n  partial notebook kept at {executed}"
        ) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ensure_kernel() -> None:
    """Install the ``moderndl`` kernelspec for this interpreter (into ``sys.prefix``) once."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL, display_name="Python (moderndl)", prefix=sys.prefix)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def provenance_markdown(data: Mapping[str, Any]) -> str:
    claims = data["claims"]
    held = sum(c["holds"] for c in claims)
    items = [("profile", f"`{data['profile']}`"), ("device", data["device"]), ("wall time", f"{data['wall_s']:.1f} s"),
             ("commit", f"`{data['commit']}`"), ("date", data["date"]), ("torch", data["torch"]),
             ("claims holding", f"{held} of {len(claims)}")]
    line = " · ".join(f"**{k}** {v}" for k, v in items)
    return f":::{{admonition}} Provenance of this page\n:class: note\n\n{line}\n:::\n"


def _add_provenance(executed: Path, data: Mapping[str, Any]) -> None:
    """Insert the provenance header under the title cell (first if there is none) of the executed notebook."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(data), metadata={"tags": ["provenance"]})
    title = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), -1)
    nb.cells.insert(title + 1, cell)
    nbformat.write(nb, executed)


# -- CLI ------------------------------------------------------------------------------
def _parse_value(text: str) -> Any:
    """``-p steps 100`` gives an int, ``-p gens "[ER, WS]"`` a list, anything else a string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moderndl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute notebooks with papermill (cached)")
    r.add_argument("names", nargs="*", help="chapter names (see 'list') or .ipynb paths")
    r.add_argument("--all", action="store_true", help="every chapter in _toc.yml, in order")
    r.add_argument("--profile", default=os.environ.get("PROFILE", "auto"), choices=profiles.PROFILES)
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    r.add_argument("--force", action="store_true", help="ignore the cache")
    sub.add_parser("list", help="chapters and their parameters")
    s = sub.add_parser("stage", help="stage the book sources with executed notebooks into _build/src")
    s.add_argument("--no-chapters", action="store_true", help="stage the book without any chapter")
    args = parser.parse_args(argv)

    from moderndl import book

    try:
        if args.command == "list":
            for name in available():
                print(f"{name}: {', '.join(f'{k}={v}' for k, v in parameters(locate(name)).items())}")
            return 0
        if args.command == "stage":
            print(book.stage(with_chapters=not args.no_chapters))
            return 0
        names = book.chapters() if args.all else args.names
        if not names and not args.all:
            raise RunError(f"name a notebook or pass --all; valid notebooks: {', '.join(available())}")
        params = {k: _parse_value(v) for k, v in args.parameter}
        failures = []
        for name in names:
            try:
                run(name, args.profile, params, force=args.force)
            except RunError as err:
                if len(names) == 1:
                    raise
                failures.append(str(err))
                print(f"error: {err}", file=sys.stderr)
        if failures:
            raise RunError(f"{len(failures)} of {len(names)} notebooks failed")
    except (RunError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
