"""Where every data file comes from: the package, or the user's overlay folders.

The package ships its worlds, prompts, pools, rubrics, calibration cases, controls and assessment seeds as
data files. A user adds to them or replaces them without editing the package: ``resources: [dir, ...]`` in
``teachwhy.yaml`` (or ``-T resources=dir1,dir2`` on an Inspect task, or ``--resources DIR`` on a command)
names folders laid out like this::

    my-resources/
      scenarios/blackmail/my_world.md     a new world (or one replacing the package's file of that name)
      scenarios/conditions.yaml           the condition factorial's messages
      prompts/documents_write.md          a generator prompt; prompts/advice/domains.yaml a pool
      rubrics/blackmail.md                a family's categories and judge rubric
      calibration/my_cases.yaml           labelled cases for `teachwhy judge-check`
      controls/blackmail.yaml             scripted control policies
      eval_prompts/judge_answer.md        the honeypot judge's answer format, agent notices
      honeypot_templates/blackmail.yaml   the templates of the honeypot demonstrations' training worlds
      seeds/ dimensions/                  the alignment assessment's seeds and judge dimensions
      assessment_prompts/ adherence_prompts/

Each top-level folder is one *area* (:data:`AREAS` maps it to the package folder it overlays). A file adds to
the area, or replaces the package's file with the same path inside the area; with several folders, a later
one wins. Every loader in the package resolves its files here (:func:`resource_path`, :func:`resource_files`),
with the overlay folders of the current context (:func:`use_resources`), and stage keys hash the files
resolved (:func:`resources_hash`), so changing an overlay file re-runs exactly the stages that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources as package_resources
from pathlib import Path

from teachwhy.errors import UserError
from teachwhy.storage import content_hash

# overlay folder name -> the package folder (relative to the ``teachwhy`` package) it adds to or replaces
AREAS: dict[str, str] = {
    "scenarios": "evals/scenarios",
    "rubrics": "evals/rubrics",
    "calibration": "evals/calibration",
    "controls": "evals/controls",
    "eval_prompts": "evals/prompts",
    "prompts": "prompts",
    "honeypot_templates": "data/honeypot_templates",
    "seeds": "assessment/seeds",
    "dimensions": "assessment/dimensions",
    "assessment_prompts": "assessment/prompts",
    "adherence_prompts": "adherence/prompts",
    "rl": "rl",  # environments/<name>.yaml (the RL prompt sets) and rubric.md (the RL reward's rubric)
}
DATA_SUFFIXES = (".md", ".yaml", ".yml", ".json")
_IGNORED = ("README.md", "README")  # a note at the top of an overlay folder is not data

_ACTIVE: ContextVar[tuple[Path, ...]] = ContextVar("teachwhy_resources", default=())
# the files resolved inside a track_resources() block: "area/path" -> the file used
_USED: ContextVar[dict[str, Path] | None] = ContextVar("teachwhy_resources_used", default=None)

# a file's identity for the caches of parsed files: its path, and when and how it last changed
Stamp = tuple[Path, int, int]


def package_dir(area: str) -> Path:
    """The package folder of an area."""
    if area not in AREAS:
        raise KeyError(f"no resource area '{area}'")
    return Path(str(package_resources.files("teachwhy"))) / AREAS[area]


def check_overlay(folder: Path, *, file: Path | None = None, key: str | None = None) -> Path:
    """``folder`` made absolute, after checking that it exists and holds only known areas.

    Args:
        folder: an overlay folder.
        file: where the folder was named (the config file), for the error message.
        key: the key it was named under (``resources[0]``, ``--resources``).

    Raises:
        UserError: the folder is missing or not a folder, or holds a top-level entry that is not an area.
    """
    if not folder.exists():
        raise UserError(f"resources folder not found: {folder}", file=file, key=key)
    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}", file=file, key=key)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _IGNORED:
            continue
        if entry.name not in AREAS or not entry.is_dir():
            raise UserError(
                f"not a resources folder (expected one of {', '.join(AREAS)})", file=entry, key=key
            )
    return folder.resolve()


def check_overlays(
    folders: Sequence[str | Path], *, file: Path | None = None, key: str = "resources"
) -> tuple[Path, ...]:
    """Every folder checked (:func:`check_overlay`), keyed ``key[i]`` in errors, in order."""
    many = len(folders) > 1 or file is not None
    return tuple(
        check_overlay(Path(f), file=file, key=f"{key}[{i}]" if many else key) for i, f in enumerate(folders)
    )


def split_folders(value: str | Sequence[str] | None) -> list[str]:
    """Folders from an Inspect task parameter: ``dir1,dir2`` or a list."""
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(i).strip() for i in items if str(i).strip()]


@contextmanager
def use_resources(
    folders: Sequence[str | Path] | None, *, key: str = "resources"
) -> Iterator[tuple[Path, ...]]:
    """Make ``folders`` the overlay of every loader called inside the block (checked first); ``None`` keeps
    the overlay in effect.

    Raises:
        UserError: a folder is missing or holds something that is not an area.
    """
    if folders is None:
        yield active_resources()
        return
    checked = check_overlays(folders, key=key)
    token = _ACTIVE.set(checked)
    try:
        yield checked
    finally:
        _ACTIVE.reset(token)


def activate_resources(folders: Sequence[str | Path], *, key: str = "resources") -> tuple[Path, ...]:
    """Make ``folders`` (checked) the overlay from here to the end of the enclosing :func:`resource_scope`
    (a command sets it once it has read its config; the CLI runs every command in a scope)."""
    checked = check_overlays(folders, key=key)
    _ACTIVE.set(checked)
    return checked


@contextmanager
def resource_scope() -> Iterator[None]:
    """On leaving the block, the overlay is again the one in effect when it was entered."""
    token = _ACTIVE.set(_ACTIVE.get())
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_resources() -> tuple[Path, ...]:
    """The overlay folders in effect here (none: the package's files only)."""
    return _ACTIVE.get()


def _layers(area: str) -> list[Path]:
    return [package_dir(area), *(folder / area for folder in active_resources())]


def _note(name: str, path: Path) -> None:
    used = _USED.get()
    if used is not None:
        used[name] = path


def resource_path(area: str, relative: str) -> Path:
    """The file ``relative`` of ``area``: the last overlay that has it, else the package's (which may not
    exist; the caller reports that)."""
    chosen = package_dir(area) / relative
    for layer in reversed(_layers(area)[1:]):
        if (layer / relative).is_file():
            chosen = layer / relative
            break
    _note(f"{area}/{relative}", chosen)
    return chosen


def _resolved(area: str, pattern: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for layer in _layers(area):
        if not layer.is_dir():
            continue
        for path in layer.glob(pattern):
            if path.is_file() and path.suffix in DATA_SUFFIXES:
                found[path.relative_to(layer).as_posix()] = path
    return {k: found[k] for k in sorted(found)}


def resource_files(area: str, pattern: str = "**/*") -> list[Path]:
    """The data files of ``area`` that match ``pattern``, the package's and the overlays' merged by their
    path inside the area (a later layer replaces an earlier one), in the order of that path."""
    found = _resolved(area, pattern)
    for relative, path in found.items():
        _note(f"{area}/{relative}", path)
    return list(found.values())


def resolved_files(patterns: Iterable[tuple[str, str]]) -> dict[str, Path]:
    """The files ``(area, pattern)`` pairs resolve to, keyed ``area/path`` (not recorded as used)."""
    files: dict[str, Path] = {}
    for area, pattern in patterns:
        files.update({f"{area}/{rel}": path for rel, path in _resolved(area, pattern).items()})
    return files


@contextmanager
def track_resources() -> Iterator[dict[str, Path]]:
    """Record every data file resolved inside the block (``area/path`` -> the file: the package's or an
    overlay's), asynchronous tasks started inside it included."""
    used: dict[str, Path] = {}
    token = _USED.set(used)
    try:
        yield used
    finally:
        _USED.reset(token)


def overlay_files(area: str) -> list[Path]:
    """The files of ``area`` that come from an overlay folder (added or replacing), in path order."""
    base = package_dir(area)
    return [p for p in resource_files(area) if not p.is_relative_to(base)]


def resources_hash(patterns: Iterable[tuple[str, str]]) -> str:
    """A hash of the files resolved for ``(area, pattern)`` pairs: each file's path in its area and bytes.

    A stage puts it in its key, so editing a package or overlay file it reads re-runs it, and a file it
    does not read changes nothing.
    """
    files = resolved_files(patterns)
    return content_hash(*[part for name in sorted(files) for part in (name, files[name].read_bytes())])


def stamp(path: Path) -> Stamp:
    """``path`` with its modification time and size, so a cache of parsed files sees an edit."""
    try:
        status = path.stat()
    except OSError:
        return (path, 0, -1)
    return (path, status.st_mtime_ns, status.st_size)


__all__ = [
    "AREAS",
    "activate_resources",
    "active_resources",
    "check_overlay",
    "check_overlays",
    "overlay_files",
    "package_dir",
    "resolved_files",
    "resource_files",
    "resource_path",
    "resource_scope",
    "resources_hash",
    "split_folders",
    "stamp",
    "track_resources",
    "use_resources",
]
