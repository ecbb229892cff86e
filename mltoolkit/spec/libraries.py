"""The library versions a pickled model depends on: recorded when it is saved, checked where it
is loaded (a pickle loaded under another scikit-learn or numpy can fail, or silently predict
differently).

Names are distribution names as ``pip`` knows them (``scikit-learn``, not ``sklearn``).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any, Mapping

from mltoolkit.errors import MltoolkitError, SpecError

PICKLE_LIBRARIES = ("joblib", "numpy", "scikit-learn")
"""Always recorded when installed: what unpickling a fitted estimator touches."""
_NOT_THIRD_PARTY = {"__main__", "builtins", "mltoolkit"}


class LibraryVersionError(MltoolkitError):
    """The installed version of a library differs from the one that pickled the model."""


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def model_distribution(model: Any) -> str | None:
    """The installed distribution that provides ``model``'s class (``xgboost`` for an
    ``xgboost.XGBClassifier``), or None for classes defined in a script, the standard library or
    mltoolkit itself."""
    top = type(model).__module__.split(".")[0]
    if top in _NOT_THIRD_PARTY:
        return None
    names = metadata.packages_distributions().get(top) or []
    return names[0] if names else None


def library_versions(model: Any) -> dict[str, str]:
    """``{distribution: version}`` of this environment for the libraries ``model`` needs to be
    unpickled: joblib, numpy and scikit-learn (where installed) and the model's own package."""
    wanted = list(PICKLE_LIBRARIES)
    own = model_distribution(model)
    if own is not None and own not in wanted:
        wanted.append(own)
    versions = {name: installed_version(name) for name in wanted}
    return {name: found for name, found in sorted(versions.items()) if found is not None}


def check_library_versions_field(field_name: str, value: Any) -> dict[str, str]:
    """``value`` as a ``{distribution: version}`` dict of non-empty strings."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() and "," not in k + v
        and "=" not in k
        for k, v in value.items()
    ):
        raise SpecError(
            field_name, value, "a dict of package name to version, e.g. {'numpy': '2.1.0'}"
        )
    return dict(value)


def version_mismatches(recorded: Mapping[str, str]) -> list[str]:
    """One sentence per library whose installed version is not the recorded one."""
    problems = []
    for name, wanted in sorted(recorded.items()):
        found = installed_version(name)
        if found != wanted:
            where = "does not have it installed" if found is None else f"has {name} {found} installed"
            problems.append(f"{name}: the model was pickled with {name} {wanted}; this environment {where}")
    return problems


def check_library_versions(recorded: Mapping[str, str], model: str = "the model") -> None:
    """Raise ``LibraryVersionError`` naming every package whose installed version differs from
    the recorded one (an empty record, as from a spec saved before versions were recorded,
    checks nothing)."""
    problems = version_mismatches(recorded)
    if problems:
        pins = " ".join(f"{name}=={recorded[name]}" for name in sorted(recorded))
        raise LibraryVersionError(
            f"{model} cannot be loaded safely here: "
            + "; ".join(problems)
            + f". Install the recorded versions (pip install {pins}) or save the model again "
            "in this environment."
        )


def format_versions(versions: Mapping[str, str]) -> str:
    """``numpy=2.1.0,scikit-learn=1.5.2``: the command-line form (``parse_versions`` reads it)."""
    return ",".join(f"{name}={version}" for name, version in sorted(versions.items()))


def parse_versions(text: str, source: str) -> dict[str, str]:
    versions: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, version = part.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise SpecError(source, text, "comma-separated package=version pairs, e.g. numpy=2.1.0")
        versions[name.strip()] = version.strip()
    return versions
