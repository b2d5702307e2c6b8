"""Find and import the release spec file, then validate it.

Search order, so that every command works from any folder of the repository:
`--spec PATH`, then `$PIPELINE_SPEC` (both relative to the working directory), then
`[tool.pipeline] spec` in the nearest pyproject.toml that sets it, then the nearest `release.py`;
both looked for from the working directory up to the project root (the git top level; outside
git, the working directory only). The spec file assigns a `pipeline.spec.Spec` to a module-level
name `spec`.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline import spec as spec_module
from pipeline.errors import SpecError
from pipeline.paths import project_root
from pipeline.spec import Spec
from pipeline.validate import validate

DEFAULT_FILE = "release.py"
ENV_VAR = "PIPELINE_SPEC"


@dataclass(frozen=True)
class LoadedSpec:
    spec: Spec
    path: Path  # the spec file, absolute
    base_dir: Path  # paths in the spec are relative to this (the spec file's folder)

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()


def find_spec_path(
    explicit: str | None, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    cwd = (cwd or Path.cwd()).resolve()
    env = os.environ if environ is None else environ
    if explicit:
        return _must_exist((cwd / explicit).resolve(), "--spec")
    if env.get(ENV_VAR):
        return _must_exist((cwd / env[ENV_VAR]).resolve(), ENV_VAR)
    folders = search_folders(cwd)
    for folder in folders:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise SpecError(f"{pyproject}: not valid TOML ({exc})") from exc
            configured = data.get("tool", {}).get("pipeline", {}).get("spec")
            if configured:
                return _must_exist(
                    (folder / configured).resolve(), f"{pyproject} [tool.pipeline] spec"
                )
    for folder in folders:
        if (folder / DEFAULT_FILE).is_file():
            return folder / DEFAULT_FILE
    where = f"{cwd}" if len(folders) == 1 else f"{cwd} up to {folders[-1]}"
    raise SpecError(
        f"no spec: no {DEFAULT_FILE} and no [tool.pipeline] spec in a pyproject.toml from {where}; "
        f"pass --spec PATH, set {ENV_VAR}, or write one with `pipeline init`"
    )


def search_folders(cwd: Path) -> tuple[Path, ...]:
    """The working directory and its parents up to the project root (the git top level)."""
    root = project_root(cwd)
    folders = [cwd]
    while folders[-1] != root:
        folders.append(folders[-1].parent)
    return tuple(folders)


def _must_exist(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise SpecError(f"{origin}: spec file {path} does not exist")
    return path


_UNEXPECTED_KW = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_MISSING_KW = re.compile(r"(\w+)\.__init__\(\) missing \d+ required keyword-only arguments?: (.+)")


def load_spec(path: Path, text: str | None = None) -> LoadedSpec:
    """Import the spec file; any mistake becomes one SpecError line naming file, line and field.

    With `text`, that source is run as if it were the file at `path` (which need not exist):
    `pipeline init --dry-run` proves the spec it would write before writing anything."""
    module_name = f"_pipeline_spec_{abs(hash(str(path)))}"
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    try:
        source = path.read_bytes() if text is None else text.encode()
    except OSError as exc:
        sys.modules.pop(module_name, None)
        raise SpecError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        exec(compile(source, str(path), "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    except TypeError as exc:
        raise SpecError(_explain_type_error(exc, path, spec_module)) from None
    except SyntaxError as exc:
        raise SpecError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # the spec is user code: any failure is a spec error, one line
        raise SpecError(f"{_where(exc, path)}: {type(exc).__name__}: {exc}") from None
    finally:
        sys.modules.pop(module_name, None)
    value = getattr(module, "spec", None)
    if not isinstance(value, Spec):
        found = type(value).__name__ if value is not None else "nothing"
        raise SpecError(f"{path}: must assign a pipeline.spec.Spec to `spec` (found {found})")
    loaded = LoadedSpec(spec=value, path=path.resolve(), base_dir=path.resolve().parent)
    validate(loaded.spec, loaded.base_dir)
    return loaded


def _where(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def _explain_type_error(exc: TypeError, path: Path, spec_module: object) -> str:
    where = _where(exc, path)
    text = str(exc)
    if match := _UNEXPECTED_KW.search(text):
        cls_name, keyword = match.groups()
        cls = getattr(spec_module, cls_name, None)
        fields = list(getattr(cls, "__dataclass_fields__", {}))
        close = difflib.get_close_matches(keyword, fields, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known fields: {', '.join(fields)}"
        return f"{where}: {cls_name}() has no field '{keyword}'{hint}"
    if match := _MISSING_KW.search(text):
        cls_name, names = match.groups()
        return f"{where}: {cls_name}() needs {names}"
    return f"{where}: {text}"


def load(explicit: str | None = None) -> LoadedSpec:
    return load_spec(find_spec_path(explicit))
