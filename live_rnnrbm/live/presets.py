"""Preset files: every `live-rnnrbm play` setting in one YAML file, found by name (the shipped ones)
or path, and checked with the file's line numbers. PyYAML's safe_load forgets where things were, so
the file is composed into nodes (which keep their start marks) and each value is constructed and
checked on its own.

    >>> from live_rnnrbm.live.presets import load_preset
    >>> settings = load_preset("jsb")                    # shipped preset by name ...
    >>> settings = load_preset("my/session.yaml")        # ... or a file of your own

Keys a file leaves out take their value from DEFAULTS = Settings().
"""
from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .setting_checks import Bad, message, show, unknown
from .settings import CC_SPEC, DEFAULTS, SPEC, PresetError, Settings, combination_problem, with_checked

SHIPPED_PACKAGE = "live_rnnrbm._presets"
DEFAULT_PRESET = "default"


# --- where presets live

def _shipped_dirs() -> list[Path]:
    """Folders holding the shipped presets: the installed package, then a source checkout's presets/."""
    dirs = []
    try:
        dirs.append(Path(str(resources.files(SHIPPED_PACKAGE))))
    except (ModuleNotFoundError, TypeError):
        pass
    dirs.append(Path(__file__).resolve().parents[2] / "presets")
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def list_presets() -> list[str]:
    """Names of the shipped presets, e.g. ['default', 'jsb', 'sparse']."""
    return sorted({p.stem for d in _shipped_dirs() for p in d.glob("*.yaml")})


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.endswith((".yaml", ".yml"))


def find_preset(name_or_path: str | os.PathLike | None) -> Path:
    """The file of a preset: None is the shipped default, a bare name ('jsb') a shipped preset,
    anything with a / or ending in .yaml a file."""
    spec = DEFAULT_PRESET if name_or_path is None else os.fspath(name_or_path)
    shipped = list_presets()
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists() and Path(spec).name == spec and Path(spec).stem in shipped:
            return find_preset(Path(spec).stem)  # 'jsb.yaml' with no such file here: the shipped one
        if path.is_dir():
            raise PresetError(f"{spec}: is a folder, not a preset file")
        if not path.is_file():
            raise PresetError(f"{spec}: no such preset file; shipped presets: {', '.join(shipped) or 'none'}")
        return path
    for folder in _shipped_dirs():
        if (folder / f"{spec}.yaml").is_file():
            return folder / f"{spec}.yaml"
    close = difflib.get_close_matches(spec, shipped, n=1)
    raise PresetError(
        f"no shipped preset named {spec!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        + f"; shipped presets: {', '.join(shipped) or 'none'}; for a file of your own give its path, "
        f"e.g. ./{spec}.yaml")


# --- loading

def load_preset(name_or_path: str | os.PathLike | None = None) -> Settings:
    """Every setting: DEFAULTS overlaid with a preset file (see find_preset for how it is found).

    A relative `weights` path, and a relative path in `switch`, is looked up beside the preset file
    first (so a preset can travel with its weights and the presets it switches to), then as given
    (current folder, or a shipped name)."""
    path = find_preset(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PresetError(f"{path}: not a text file (UTF-8): {e.reason} at byte {e.start}") from None
    except OSError as e:
        raise PresetError(f"{path}: cannot read it: {e.strerror}") from None
    found = parse_preset(text, str(path))
    weights = found.get("weights")
    if weights and not Path(weights).is_absolute() and (path.parent / weights).is_file():
        found["weights"] = str(path.parent / weights)
    if found.get("switch"):
        found["switch"] = [str(path.parent / e) if not Path(e).is_absolute() and (path.parent / e).is_file() else e
                           for e in found["switch"]]
    return with_checked(DEFAULTS, found)


def parse_preset(text: str, filename: str = "<preset>") -> dict[str, Any]:
    """The settings a preset text gives (only the keys it has), checked; raises PresetError."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            what = e.problem or e.context or "cannot read it"
            if e.context and e.problem:  # e.g. an unclosed [ shows up where the next key is
                what += f" ({e.context}" + (f" that starts on line {e.context_mark.line + 1}"
                                            if e.context_mark and e.context_mark.line != mark.line else "") + ")"
            if "another document" in what:
                what = "a preset is a single YAML document, but a second one starts here"
            if "'\\t'" in what:
                what += "; YAML indents with spaces, not tabs"
            raise PresetError(f"{filename}, line {mark.line + 1}: not valid YAML: {what}") from None
        except yaml.YAMLError as e:
            raise PresetError(f"{filename}: not valid YAML: {e}") from None
        if root is None:  # an empty (or all-comment) file: every setting at its default
            return {}
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else f"the single value {show(None, root)}"
            raise PresetError(f"{filename}, line {root.start_mark.line + 1}: a preset must be a mapping of "
                              f"'key: value' lines, got {kind}")
        lines: dict[str, int] = {}
        found = _read_mapping(loader, root, SPEC, filename, lines, "a preset key")
    finally:
        loader.dispose()
    problem = combination_problem(with_checked(DEFAULTS, found), explicit=set(found))
    if problem:
        keys, text_ = problem
        line = min(lines[k] for k in keys if k in lines)
        raise PresetError(f"{filename}, line {line}: {text_}")
    return found


def _read_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, spec: dict, filename: str,
                  lines: dict[str, int], what: str, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        where = f"{filename}, line {line}"
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "(a list or mapping)"
        if key not in spec:
            raise PresetError(f"{where}: {unknown(prefix + str(key) if prefix else key, [prefix + k for k in spec], what)}")
        if key in seen:
            raise PresetError(f"{where}: {prefix + key!r} is given twice (first on line {seen[key]})")
        seen[key] = line
        lines[prefix + key] = line
        allowed, check, _ = spec[key]
        value_line = value_node.start_mark.line + 1
        if check is None:  # the nested cc mapping
            if not isinstance(value_node, yaml.MappingNode):
                value = loader.construct_object(value_node, deep=True)
                raise PresetError(f"{filename}, line {value_line}: {message(key, allowed, show(value, value_node), '')}")
            found[key] = _read_mapping(loader, value_node, CC_SPEC, filename, lines, "a cc key", key + ".")
            continue
        value = loader.construct_object(value_node, deep=True)
        plain = value_node.value if isinstance(value_node, yaml.ScalarNode) and value_node.style is None else None
        try:
            found[key] = check(value, plain)
        except Bad as bad:
            raise PresetError(f"{filename}, line {value_line}: "
                              f"{message(prefix + key, allowed, show(value, value_node), bad.hint)}") from None
    return found
