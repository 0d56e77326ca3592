"""``python -m moderndl run <name>``: execute one chapter with papermill, cached.

- The notebook's ``parameters`` cell defines the valid ``-p`` names; an unknown name is an
  error listing them (papermill alone would inject it silently). Each value is checked
  against the type of its profile value in the chapter's table (``moderndl.<pkg>.scales``)
  and its declared range before the kernel starts, and an unwritable ``_build`` is an error
  before any work.
- The cache key of a chapter hashes the notebook, the library modules it imports
  (transitively: the core, its own package, never another chapter's), the parameters, the
  resolved profile, and the *contents* of any file or folder a parameter names. When it
  matches, nothing is executed: the outputs on disk came from exactly the code they show.
- A failing cell names the notebook, the cell (its position among the source notebook's
  code cells, and its first line) and the exception, keeps the partial notebook under
  ``_build/executed/`` and exits non-zero. Only a complete run writes its key file, and the
  book stages only complete runs whose key still matches (:func:`complete`).
- After a run, the sidecar ``_build/metrics/<name>.json`` gets the wall time, and the
  executed notebook gets a provenance header (profile, device, wall time, commit, date,
  torch) right under its title.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from moderndl import chapters, ledger, paths, profiles

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


def validate(path: Path, given: Mapping[str, Any], profile: str = "smoke") -> dict[str, Any]:
    """Names against the parameters cell; types and ranges against the chapter's profile table.

    Returns the values typed as the table has them (``-p lr 1`` becomes ``1.0``).
    """
    valid = parameters(path)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise RunError(f"{path.stem}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {', '.join(valid)}")
    given = dict(given)
    if "seed" in given and (not isinstance(given["seed"], int) or isinstance(given["seed"], bool)
                            or given["seed"] < 0):
        raise RunError(f"{path.stem}: parameter seed={given['seed']!r} must be a non-negative int")
    scales = chapters.scales(path.stem)
    if scales is None:
        return given
    table_names = {k: v for k, v in given.items() if k in scales.TABLE["full"]}
    try:
        typed = profiles.check(scales.TABLE, table_names, profile, getattr(scales, "RANGES", None))
    except ValueError as err:
        raise RunError(f"{path.stem}: {err}") from None
    return {**given, **typed}


# -- cache ----------------------------------------------------------------------------
def library_dir() -> Path:
    """The library whose sources key the cache: this package, or ``$MODERNDL_LIB`` (tests)."""
    return Path(os.environ.get("MODERNDL_LIB") or Path(__file__).resolve().parent)


DATA_SUFFIXES = (".yaml", ".yml", ".json")  # package data read at run time (e.g. a DeepSpeed config)


def _module_file(name: str) -> Path | None:
    """``moderndl.a.b`` -> ``<lib>/a/b.py`` or ``<lib>/a/b/__init__.py``; ``None`` if neither."""
    parts = name.split(".")
    if parts[0] != "moderndl":
        return None
    base = library_dir().joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Module names an AST imports, with ``from x import y`` also giving ``x.y`` (y may be a module)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .a import b
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def _notebook_code(path: Path) -> str:
    """The notebook's code cells as plain Python (IPython magics turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tm = TransformerManager()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join(tm.transform_cell("".join(c["source"])) for c in cells if c["cell_type"] == "code")


def imported_files(path: Path) -> list[Path]:
    """The library files a notebook depends on: the modules it imports, transitively, with
    their parent packages' ``__init__`` and the package data beside them."""
    todo = [(ast.parse(_notebook_code(path)), "moderndl")]
    files: set[Path] = set()
    while todo:
        tree, package = todo.pop()
        for name in sorted(_imports(tree, package)):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # moderndl, moderndl.a, moderndl.a.b
                f = _module_file(".".join(parts[:i]))
                if f is None or f in files:
                    continue
                files.add(f)
                files.update(p for p in f.parent.iterdir() if p.suffix in DATA_SUFFIXES)
                pkg = ".".join(parts[:i]) if f.name == "__init__.py" else ".".join(parts[: i - 1])
                todo.append((ast.parse(f.read_text()), pkg))
    return sorted(files)


def _hash_path(h: hashlib._Hash, target: Path) -> None:
    """File names, sizes and bytes under ``target`` (a file or a folder), in a fixed order."""
    files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(target) if f != target else f.name).encode())
        h.update(str(f.stat().st_size).encode())
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)


def user_paths(path: Path, params: Mapping[str, Any], profile: str) -> list[Path]:
    """Files and folders named by the run's string parameters (given, or the profile's)."""
    values = dict(params)
    scales = chapters.scales(path.stem)
    if scales is not None and profile in scales.TABLE:
        values = {**scales.TABLE[profile], **values}
    found = []
    for v in values.values():
        if isinstance(v, str) and v:
            for candidate in (Path(v).expanduser(), path.parent / v):
                if candidate.exists():
                    found.append(candidate.resolve())
                    break
    return found


def cache_key(path: Path, params: Mapping[str, Any], profile: str) -> str:
    """sha256 of the notebook, the library files it imports, the parameters, the profile and
    the contents of the user files and folders the parameters name."""
    h = hashlib.sha256()
    h.update(path.read_bytes())
    lib = library_dir()
    for f in imported_files(path):
        h.update(str(f.relative_to(lib)).encode())
        h.update(f.read_bytes())
    h.update(json.dumps(dict(params), sort_keys=True, default=str).encode())
    h.update(profile.encode())
    for target in user_paths(path, params, profile):
        _hash_path(h, target)
    return h.hexdigest()


def outputs(name: str, profile: str = "") -> tuple[Path, Path, Path]:
    """Executed notebook, sidecar, cache key file. The book's profile writes ``_build/executed``,
    ``_build/metrics`` and ``_build/cache``; a ``dry`` run writes under ``_build/dry/``, so
    ``make test`` can check it without evicting the smoke run the book is built from."""
    build = paths.build() / "dry" if profile == "dry" else paths.build()
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
    try:
        resolved = profiles.resolve(profile)
    except ValueError as err:
        raise RunError(str(err)) from None
    params = validate(path, params, resolved)
    executed, sidecar, keyfile = outputs(stem, resolved)
    _check_writable(executed, sidecar, keyfile)
    key = cache_key(path, params, resolved)
    if not force and keyfile.is_file() and keyfile.read_text() == key and executed.is_file() and sidecar.is_file():
        log(f"{stem}: cached ({resolved})")
        return {**ledger.load(sidecar), "cached": True}

    for p in (executed, sidecar, keyfile):
        p.unlink(missing_ok=True)
    log(f"{stem}: executing at profile {resolved} ...")
    started = time.perf_counter()
    _execute(path, executed, sidecar, {**params, "profile": resolved})
    wall = round(time.perf_counter() - started, 2)

    data = ledger.load(sidecar) if sidecar.is_file() else ledger.new_sidecar(stem, resolved)
    data.update(wall_s=wall, parameters=params, code_key=key)
    sidecar.write_text(json.dumps(data, indent=2))
    _add_provenance(executed, data)
    keyfile.write_text(key)
    failed = [c["id"] for c in data["claims"] if ledger.asserted(c) and not c["holds"]]
    log(f"{stem}: done in {wall:.1f} s; {len(data['claims'])} claims" + (f", NOT holding: {failed}" if failed else ""))
    return {**data, "cached": False}


def _check_writable(*files: Path) -> None:
    """Create the output folders and prove each is writable, before any work is done."""
    for folder in sorted({f.parent for f in files}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise RunError(f"cannot write to {folder}: {err.strerror or err}; make it writable or run from a "
                           "checkout you own") from None


def complete(name: str) -> bool:
    """Whether ``name`` has a finished run whose key still matches its code, data and parameters."""
    executed, sidecar, keyfile = outputs(name)
    if not (executed.is_file() and sidecar.is_file() and keyfile.is_file()):
        return False
    data = ledger.load(sidecar)
    try:
        path = locate(name)
    except RunError:
        return False
    return keyfile.read_text() == cache_key(path, data.get("parameters", {}), data["profile"])


def _code_cell_position(path: Path, source: str) -> tuple[int, int]:
    """``(k, n)``: the failing cell is code cell ``k`` (from 1) of the ``n`` in the source notebook."""
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for k, c in enumerate(code, start=1):
        if "".join(c["source"]).strip() == source.strip():
            return k, len(code)
    return 0, len(code)


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
        k, n = _code_cell_position(path, err.source)
        where = f"code cell {k} of {n}" if k else f"the cell at index {err.cell_index} of the executed notebook"
        raise RunError(
            f"{path.stem}: {where} failed with {err.ename}: {err.evalue}\n  cell begins: {first}\n"
            f"  partial notebook kept at {executed} (not staged into the book)"
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


LAPTOP_RECORDS = "results/laptop"


def record_status(name: str, record: Mapping[str, Any]) -> str:
    """``current`` when a committed record's code key equals today's, else ``stale since <commit>``."""
    try:
        key = cache_key(locate(name), record.get("parameters", {}), record["profile"])
    except RunError:
        return f"stale since {record.get('commit', 'unknown')} (no such notebook now)"
    return "current" if record.get("code_key") == key else f"stale since {record.get('commit', 'unknown')}"


def records(names: Sequence[str], profile: str = "laptop", log=print) -> list[str]:
    """Re-run ``profile`` for chapters whose committed record is stale or missing, and copy
    their sidecars into ``results/<profile>/``. Returns the chapters it refreshed."""
    folder = paths.root() / "results" / profile
    folder.mkdir(parents=True, exist_ok=True)
    refreshed = []
    for name in names:
        target = folder / f"{name}.json"
        if target.is_file() and record_status(name, ledger.load(target)) == "current":
            log(f"{name}: {profile} record is current")
            continue
        run(name, profile, {}, log=log)
        shutil.copyfile(outputs(name, profile)[1], target)
        refreshed.append(name)
        log(f"{name}: {profile} record written to {target.relative_to(paths.root())}")
    return refreshed


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
    rec = sub.add_parser("records", help="refresh stale or missing laptop records into results/laptop/")
    rec.add_argument("names", nargs="*", help="chapters (default: every chapter in _toc.yml)")
    s = sub.add_parser("stage", help="stage the book sources with executed notebooks into _build/src")
    s.add_argument("--no-chapters", action="store_true", help="stage the book without any chapter")
    args = parser.parse_args(argv)

    from moderndl import stage

    try:
        if args.command == "list":
            for name in available():
                print(f"{name}: {', '.join(f'{k}={v}' for k, v in parameters(locate(name)).items())}")
            return 0
        if args.command == "stage":
            print(stage.stage(with_chapters=not args.no_chapters))
            return 0
        if args.command == "records":
            records(args.names or stage.chapters())
            return 0
        names = stage.chapters() if args.all else args.names
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
    except KeyboardInterrupt:
        print("interrupted: the run stopped; its partial outputs will not be staged into the book",
              file=sys.stderr)
        return 130
    return 0
