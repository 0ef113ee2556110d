"""Query bodies and results.

A KairosDB query answer nests results three deep (``queries[].results[]``) and tells a
group's tag values inside ``group_by`` entries. :class:`Series` flattens one result into
what a caller reads: the metric, the group's own tag values, every tag the group's
series carry, and the points as ``(timestamp_ms, value)`` tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import times

Number = Union[int, float]

Aggregator = Union[str, Mapping[str, Any]]
"""``"sum"`` or KairosDB's aggregator object (see :func:`aggregator`)."""

GroupBy = Union[str, Sequence[str], Sequence[Mapping[str, Any]], Mapping[str, Any]]
"""A tag name, a list of tag names (group by those tags), or KairosDB's group_by objects."""


@dataclass
class Series:
    """One result of a query: a group of series (one group without ``group_by``)."""

    name: str
    """The metric name (or its alias)."""
    values: List[Tuple[int, Number]]
    """``(timestamp_ms, value)``, oldest first unless ``order="desc"``."""
    tags: Dict[str, List[str]] = field(default_factory=dict)
    """Every tag of the group's series and its values."""
    group: Dict[str, str] = field(default_factory=dict)
    """The group's tag values when grouped by tags (``{"host": "web1"}``)."""
    group_by: List[Dict[str, Any]] = field(default_factory=list)
    """The daemon's ``group_by`` entries as sent (tag, time, value, bin and type)."""

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> "Series":
        group: Dict[str, str] = {}
        for g in result.get("group_by") or []:
            if g.get("name") == "tag" and isinstance(g.get("group"), dict):
                group.update(g["group"])
        return cls(
            name=result.get("name", ""),
            values=[(int(v[0]), v[1]) for v in result.get("values") or []],
            tags={k: list(v) for k, v in (result.get("tags") or {}).items()},
            group=group,
            group_by=list(result.get("group_by") or []),
        )


def aggregator(
    name: str,
    sampling: Optional[Union[str, Mapping[str, Any], Any]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """An aggregator object: ``aggregator("avg", "5m")`` is
    ``{"name": "avg", "sampling": {"value": 5, "unit": "minutes"}}``. Other KairosDB
    fields (``align_sampling``, ``percentile``, ``factor``, ...) go in ``extra``."""
    out: Dict[str, Any] = {"name": name}
    if sampling is not None:
        out["sampling"] = times.relative(sampling)
    out.update(extra)
    return out


def metric_body(
    metric: str,
    tags: Optional[Mapping[str, Any]],
    aggregators: Optional[Iterable[Aggregator]],
    group_by: Optional[GroupBy],
    limit: Optional[int],
    order: Optional[str],
) -> Dict[str, Any]:
    m: Dict[str, Any] = {"name": metric}
    if tags:
        m["tags"] = {
            k: [str(x) for x in v] if isinstance(v, (list, tuple, set, frozenset)) else [str(v)]
            for k, v in tags.items()
        }
    if aggregators:
        m["aggregators"] = [{"name": a} if isinstance(a, str) else dict(a) for a in aggregators]
    if group_by:
        m["group_by"] = _group_by(group_by)
    if limit is not None:
        m["limit"] = limit
    if order is not None:
        m["order"] = order
    return m


def _group_by(g: GroupBy) -> List[Dict[str, Any]]:
    if isinstance(g, str):
        return [{"name": "tag", "tags": [g]}]
    if isinstance(g, Mapping):
        return [dict(g)]
    items = list(g)
    if all(isinstance(x, str) for x in items):
        return [{"name": "tag", "tags": items}]
    if all(isinstance(x, Mapping) for x in items):
        return [dict(x) for x in items]  # type: ignore[arg-type]
    raise TypeError("group_by is a tag name, a list of tag names or a list of group_by objects, not %r" % (g,))
