"""MLflow's search syntax, the subset Studiolo answers, turned into ORM filters.

Filters are comparisons joined by AND:
    metrics.acc > 0.9 AND params.model = 'cnn' AND tags.team != 'a'
    AND attributes.status = 'FINISHED' AND attributes.run_name LIKE 'base%'
Keys with spaces or other characters are quoted: metrics.`val loss` or metrics."val loss".
Operators: = != > >= < <= for numbers; = != LIKE ILIKE IN (...) NOT IN (...) for strings.
Order clauses: `metrics.acc DESC`, `params.lr`, `attributes.start_time ASC`, `tags.t`.

A run matches a metric, param or tag clause only if it has that key (as in MLflow); metric
clauses compare the latest value. OR, parentheses around clauses, and dataset or model
filters are not supported: they are refused with a 400 naming the problem.

LIKE and ILIKE patterns: `%` any run of characters, `_` one character, a backslash makes the
next character literal (experiments/like.py matches them in linear time). A search costs
bounded work: a filter has at most MAX_FILTER_CLAUSES clauses, an IN list MAX_IN_VALUES
strings, a pattern SEARCH_MAX_PATTERN_LENGTH characters (a setting), and the tokenizer's
expressions never backtrack (possessive repeats), so parsing is linear in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import (
    Exists,
    F,
    OrderBy,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Left

from experiments.like import ILike, Like
from experiments.models import (
    PARAM_INDEX_PREFIX,
    Experiment,
    ExperimentTag,
    MetricSummary,
    Run,
    RunParam,
    RunTag,
)
from studio.errors import ValidationError

# Possessive repeats (`*+`, `++`): a token that cannot end where it is never retried shorter.
# (`\d+\.?\d*` followed by a letter took 4 s on 8,000 digits, retrying every split.)
_TOKEN = re.compile(
    r"""\s*+(?:
        (?P<string>'(?:[^'\\]|\\.|'')*+'|"(?:[^"\\]|\\.)*+")
      | (?P<op>!=|<>|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | (?P<number>-?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?(?![\w.]))
      | (?P<ident>[A-Za-z_]\w*+(?:\.(?:`[^`]++`|"[^"]++"|[\w./:\-]++))?)
    )""",
    re.VERBOSE,
)

# Bounds on one search's work (each clause is a subquery, each IN value a parameter).
MAX_FILTER_CLAUSES = 50
MAX_IN_VALUES = 1000
MAX_ORDER_CLAUSES = 10

_PREFIXES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}

# Run attributes: name in the search syntax -> (model field, kind).
RUN_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "status": ("status", "string"),
    "run_name": ("name", "string"),
    "run_id": ("run_uuid", "string"),
    "user_id": ("created_by__username", "string"),
    "start_time": ("start_time", "number"),
    "created": ("start_time", "number"),
    "end_time": ("end_time", "number"),
}
EXPERIMENT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "name": ("name", "string"),
    "experiment_id": ("pk", "number"),
    "creation_time": ("created_at", "datetime"),
    "last_update_time": ("updated_at", "datetime"),
}

_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
_NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<="}


@dataclass(frozen=True)
class Clause:
    entity: str  # metrics | params | tags | attributes
    key: str
    op: str
    value: Any  # str, float, or a tuple of str for IN


@dataclass(frozen=True)
class Order:
    entity: str
    key: str
    ascending: bool


def _invalid(message: str, field: str = "filter") -> ValidationError:
    return ValidationError(f"{field}: {message}", field=field)


def _unquote_key(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] and key[0] in '`"':
        return key[1:-1]
    return key


def _string_body(token: str) -> str:
    """A quoted string's text, its escapes kept (a LIKE pattern reads them itself)."""
    body = token[1:-1]
    return body.replace("''", "'") if token[0] == "'" else body


def _unquote_string(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", _string_body(token), flags=re.DOTALL)


def _identifier(token: str, *, field: str, default_entity: str | None = None) -> tuple[str, str]:
    prefix, dot, key = token.partition(".")
    if not dot:
        if default_entity is None:
            raise _invalid(
                f"{token!r} needs a prefix: metrics., params., tags. or attributes.", field
            )
        return default_entity, token
    entity = _PREFIXES.get(prefix.lower())
    if entity is None:
        raise _invalid(
            f"unknown entity {prefix!r}; expected metrics, params, tags or attributes", field
        )
    return entity, _unquote_key(key)


def _tokens(text: str, field: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _invalid(f"cannot parse {text[position : position + 30]!r}", field)
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse_filter(
    text: str, *, attributes: dict[str, tuple[str, str]] = RUN_ATTRIBUTES
) -> list[Clause]:
    if not text or not text.strip():
        return []
    tokens = _tokens(text, "filter")
    clauses: list[Clause] = []
    index = 0

    def take() -> tuple[str, str]:
        nonlocal index
        if index >= len(tokens):
            raise _invalid("the filter ends in the middle of a comparison")
        token = tokens[index]
        index += 1
        return token

    while True:
        kind, word = take()
        if kind != "ident":
            raise _invalid(f"expected a name like metrics.acc, found {word!r}")
        entity, key = _identifier(word, field="filter", default_entity="attributes")
        kind, op = take()
        if kind == "ident" and op.upper() == "NOT":
            kind, word = take()
            if word.upper() != "IN":
                raise _invalid(f"expected IN after NOT, found {word!r}")
            op = "NOT IN"
        elif kind == "ident" and op.upper() in ("LIKE", "ILIKE", "IN"):
            op = op.upper()
        elif kind != "op":
            raise _invalid(f"expected a comparison after {key!r}, found {op!r}")
        op = "!=" if op == "<>" else op
        value: Any
        if op in ("IN", "NOT IN"):
            if take() != ("punct", "("):
                raise _invalid(f"{op} needs a parenthesised list of strings")
            items: list[str] = []
            while True:
                if len(items) == MAX_IN_VALUES:
                    raise _invalid(f"an {op} list holds at most {MAX_IN_VALUES} strings")
                kind, word = take()
                if kind != "string":
                    raise _invalid(f"{op} lists hold quoted strings, found {word!r}")
                items.append(_unquote_string(word))
                kind, word = take()
                if word == ")":
                    break
                if word != ",":
                    raise _invalid(f"expected ',' or ')' in the {op} list, found {word!r}")
            value = tuple(items)
        else:
            kind, word = take()
            if kind == "string":
                value = _string_body(word) if op in ("LIKE", "ILIKE") else _unquote_string(word)
            elif kind == "number":
                value = float(word)
            else:
                raise _invalid(f"expected a quoted string or a number, found {word!r}")
        clauses.append(_checked(Clause(entity, key, op, value), attributes))
        if index == len(tokens):
            return clauses
        if len(clauses) == MAX_FILTER_CLAUSES:
            raise _invalid(f"a filter holds at most {MAX_FILTER_CLAUSES} clauses")
        kind, word = take()
        if word.upper() != "AND":
            raise _invalid(f"clauses are joined by AND (OR is not supported), found {word!r}")


def _checked(clause: Clause, attributes: dict[str, tuple[str, str]]) -> Clause:
    if clause.entity == "metrics":
        kind = "number"
    elif clause.entity == "attributes":
        if clause.key not in attributes:
            raise _invalid(
                f"unknown attribute {clause.key!r}; expected one of {', '.join(attributes)}"
            )
        kind = attributes[clause.key][1]
        kind = "number" if kind == "datetime" else kind
    else:
        kind = "string"
    ops = _NUMBER_OPS if kind == "number" else _STRING_OPS
    if clause.op not in ops:
        raise _invalid(f"{clause.entity}.{clause.key} does not support {clause.op}")
    if kind == "number" and not isinstance(clause.value, float):
        raise _invalid(f"{clause.entity}.{clause.key} compares with a number, not {clause.value!r}")
    if kind == "string" and isinstance(clause.value, float):
        raise _invalid(
            f"{clause.entity}.{clause.key} compares with a quoted string, not {clause.value:g}"
        )
    limit = settings.SEARCH_MAX_PATTERN_LENGTH
    if clause.op in ("LIKE", "ILIKE") and len(clause.value) > limit:
        raise _invalid(
            f"the {clause.op} pattern for {clause.entity}.{clause.key} is "
            f"{len(clause.value)} characters long; the limit is {limit}"
        )
    return clause


def parse_order_by(
    clauses: list[str], *, attributes: dict[str, tuple[str, str]] = RUN_ATTRIBUTES
) -> list[Order]:
    if len(clauses) > MAX_ORDER_CLAUSES:
        raise _invalid(f"at most {MAX_ORDER_CLAUSES} order clauses, got {len(clauses)}", "order_by")
    orders = []
    for text in clauses:
        tokens = _tokens(text, "order_by")
        if not tokens or tokens[0][0] != "ident" or len(tokens) > 2:
            raise _invalid(f"{text!r}: expected e.g. 'metrics.acc DESC'", "order_by")
        entity, key = _identifier(tokens[0][1], field="order_by", default_entity="attributes")
        direction = tokens[1][1].upper() if len(tokens) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise _invalid(f"{text!r}: the direction is ASC or DESC", "order_by")
        if entity == "attributes" and key not in attributes:
            raise _invalid(f"unknown attribute {key!r}", "order_by")
        orders.append(Order(entity, key, direction == "ASC"))
    return orders


# --- to the ORM ---------------------------------------------------------------------------


_NUMBER_LOOKUPS = {"=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _value_q(field: str, op: str, value: Any) -> Q | Like:
    if op == "LIKE":
        return Like(F(field), value)
    if op == "ILIKE":
        return ILike(F(field), value)
    if op == "IN":
        return Q(**{f"{field}__in": value})
    if op == "NOT IN":
        return ~Q(**{f"{field}__in": value})
    if op == "!=":
        return ~Q(**{field: value}) & Q(**{f"{field}__isnull": False})
    return Q(**{f"{field}__{_NUMBER_LOOKUPS[op]}": value})


def _keyed_rows(entity: str, key: str) -> tuple[QuerySet[Any], str]:
    """The rows of one metric, param or tag key of the outer run, and the column compared."""
    if entity == "metrics":
        return MetricSummary.objects.filter(run=OuterRef("pk"), key=key), "last_value"
    if entity == "params":
        return RunParam.objects.filter(run=OuterRef("pk"), key=key), "value"
    return RunTag.objects.filter(run=OuterRef("pk"), key=key), "value"


def apply_run_filter(runs: QuerySet[Run], clauses: list[Clause]) -> QuerySet[Run]:
    for clause in clauses:
        if clause.entity == "attributes":
            field = RUN_ATTRIBUTES[clause.key][0]
            value = clause.value
            if RUN_ATTRIBUTES[clause.key][1] == "number":
                value = int(value) if float(value).is_integer() else value
            runs = runs.filter(_value_q(field, clause.op, value))
            continue
        rows, field = _keyed_rows(clause.entity, clause.key)
        rows = rows.filter(_value_q(field, clause.op, clause.value))
        if clause.entity == "params":
            rows = _by_indexed_prefix(rows, clause.op, clause.value)
        runs = runs.filter(Exists(rows))
    return runs


def _by_indexed_prefix(rows: QuerySet[Any], op: str, value: Any) -> QuerySet[Any]:
    """Equality on a param also compares the value's prefix, the expression RunParam's
    (key, prefix) index holds: the database then finds the matching params through the
    index (and the runs from them) instead of probing every run of the experiments."""
    if op not in ("=", "IN"):
        return rows
    prefixed: QuerySet[Any] = rows.alias(value_prefix=Left("value", PARAM_INDEX_PREFIX))
    if op == "=":
        return prefixed.filter(value_prefix=value[:PARAM_INDEX_PREFIX])
    return prefixed.filter(value_prefix__in=sorted({v[:PARAM_INDEX_PREFIX] for v in value}))


def apply_run_order(runs: QuerySet[Run], orders: list[Order]) -> QuerySet[Run]:
    expressions: list[OrderBy] = []
    for index, order in enumerate(orders):
        if order.entity == "attributes":
            expression: Any = F(RUN_ATTRIBUTES[order.key][0])
        else:
            rows, field = _keyed_rows(order.entity, order.key)
            name = f"order_{index}"
            runs = runs.annotate(**{name: Subquery(rows.values(field)[:1])})
            expression = F(name)
        # Runs without the key (and NaN metrics) sort last either way, as in MLflow.
        expressions.append(
            expression.asc(nulls_last=True) if order.ascending else expression.desc(nulls_last=True)
        )
    # Tie-breakers keep pages stable: newest first, then by id.
    return runs.order_by(*expressions, F("start_time").desc(), F("id").desc())


def apply_experiment_filter(
    experiments: QuerySet[Experiment], clauses: list[Clause]
) -> QuerySet[Experiment]:
    from datetime import UTC, datetime

    for clause in clauses:
        if clause.entity == "attributes":
            field, kind = EXPERIMENT_ATTRIBUTES[clause.key]
            value: Any = clause.value
            if kind == "datetime":
                value = datetime.fromtimestamp(float(value) / 1000, tz=UTC)
            elif kind == "number":
                value = int(value)
            experiments = experiments.filter(_value_q(field, clause.op, value))
        elif clause.entity == "tags":
            matching = ExperimentTag.objects.filter(
                experiment=OuterRef("pk"), key=clause.key
            ).filter(_value_q("value", clause.op, clause.value))
            experiments = experiments.filter(Exists(matching))
        else:
            raise _invalid(f"experiments cannot be filtered on {clause.entity}")
    return experiments


def apply_experiment_order(
    experiments: QuerySet[Experiment], orders: list[Order]
) -> QuerySet[Experiment]:
    expressions = []
    for order in orders:
        if order.entity != "attributes":
            raise _invalid("experiments are ordered by attributes only", "order_by")
        expression = F(EXPERIMENT_ATTRIBUTES[order.key][0])
        expressions.append(expression.asc() if order.ascending else expression.desc())
    return experiments.order_by(*expressions, F("created_at").desc(), F("id").desc())
