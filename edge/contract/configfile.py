"""Load YAML config files into pydantic models, reporting problems as FILE:LINE: KEY: message.

ruamel.yaml's round-trip loader keeps the line of every key, so a pydantic error location
(`("mqtt", "port")`) maps back to the line an integrator has to fix. `${VAR}` in a string value
is replaced by the environment variable before validation; a missing variable is a problem too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from edge.contract.errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with line information; raise ConfigError on syntax errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, "(file)", exc.strerror or str(exc))]
        ) from exc
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(str(path), line, "(yaml)", str(exc.problem))]) from exc
    return {} if data is None else data


def load_model(path: Path, model: type[M], *, extra: dict[str, Any] | None = None) -> M:
    """Validate one YAML file against `model`; every problem is reported with its line.

    `extra` adds values that do not come from the file itself (a family's id from its name).
    """
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(str(path), 1, "(root)", "expected a mapping of keys")])
    problems: list[ConfigProblem] = []
    plain = _expand_env(data, (), path, problems)
    if problems:
        raise ConfigError([_with_line(p, data) for p in problems])
    if extra:
        plain = {**plain, **extra}
    return validate_data(plain, model, path=path, located=data)


def validate_data(plain: Any, model: type[M], *, path: Path, located: Any = None) -> M:
    """Validate already-parsed data, mapping pydantic errors to lines in `located`."""
    try:
        return model.model_validate(plain)
    except ValidationError as exc:
        raise ConfigError(
            [_problem(path, located, err) for err in exc.errors(include_url=False)]
        ) from exc


def _problem(path: Path, located: Any, err: ErrorDetails) -> ConfigProblem:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "(root)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict | list):
        message = f"{message} (got {err['input']!r})"
    return ConfigProblem(str(path), line_of(located, loc), key, message)


def line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest part of `loc` that exists in the YAML tree."""
    line = 1 if isinstance(node, CommentedMap | CommentedSeq) else None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _with_line(problem: ConfigProblem, located: Any) -> ConfigProblem:
    loc = tuple(int(p) if p.isdigit() else p for p in problem.key.split("."))
    return ConfigProblem(problem.file, line_of(located, loc), problem.key, problem.message)


def _expand_env(node: Any, loc: tuple[Any, ...], path: Path, problems: list[ConfigProblem]) -> Any:
    """Copy the YAML tree into plain dicts and lists, substituting `${VAR}` references."""
    if isinstance(node, dict):
        return {k: _expand_env(v, (*loc, k), path, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, (*loc, i), path, problems) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _ENV_REF.sub(lambda m: _env_value(m.group(1), loc, path, problems), str(node))
    return node


def _env_value(name: str, loc: tuple[Any, ...], path: Path, problems: list[ConfigProblem]) -> str:
    if name in os.environ:
        return os.environ[name]
    problems.append(
        ConfigProblem(
            str(path), None, ".".join(map(str, loc)), f"environment variable {name} is not set"
        )
    )
    return ""
