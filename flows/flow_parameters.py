"""Validation of the flow's parameters ``chunks``, ``container`` and ``force``, before anything else runs.

The function app submits ``chunks`` (a JSON list of blob names), ``container`` and ``force``. Metaflow's Argo
start pod passes parameter values through a bash ``export``, where ``$`` and backticks are
expanded, so a name is only trusted after the strict allow-list of ``chunk_contract.names``.
"""

from __future__ import annotations

from typing import Any

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.records import InvalidContainerName, validate_container_name

__all__ = ["InvalidParameter", "validate_force", "validate_parameters"]


class InvalidParameter(ValueError):
    """A flow parameter broke its rule; the message names the parameter and the rule."""


def validate_parameters(chunks: Any, container: Any, results_container: str) -> list[str]:
    """Check ``chunks`` and ``container``; return the chunk names, duplicates removed, in order.

    Parameters
    ----------
    chunks : Any
        The parsed ``chunks`` parameter: must be a list of valid chunk names (empty: fallback mode).
    container : Any
        The ``container`` parameter: must be a valid Azure container name.
    results_container : str
        The results container; the chunk container must be another one, or results would be
        taken for chunks.

    Raises
    ------
    InvalidParameter
        Naming the parameter, the offending value (its position for a chunk) and the rule.
    """
    try:
        validate_container_name(container)
    except InvalidContainerName as exc:
        raise InvalidParameter(f"parameter 'container': {exc}") from None
    if container == results_container:
        raise InvalidParameter(
            f"parameter 'container' is {container!r}, the results container (SENSOR_RESULTS_CONTAINER): "
            "chunks and results must live in different containers"
        )
    if not isinstance(chunks, list):
        raise InvalidParameter(
            f"parameter 'chunks' must be a JSON list of blob names, got {type(chunks).__name__} {chunks!r:.200}"
        )
    names: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(chunks):
        try:
            validate_chunk_name(name)
        except InvalidChunkName as exc:
            raise InvalidParameter(f"parameter 'chunks', item {i}: {exc}") from None
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def validate_force(force: Any) -> bool:
    """Return ``force`` if it is a bool, else raise :class:`InvalidParameter`.

    Metaflow converts the value with click's BOOL type before the flow sees it, so anything else
    means the flow was started some other way; ``bool("false")`` would be ``True``, hence no cast.
    """
    if not isinstance(force, bool):
        raise InvalidParameter(f"parameter 'force' must be true or false, got {type(force).__name__} {force!r:.200}")
    return force
