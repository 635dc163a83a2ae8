"""No module but `endpoints/services/instances.py` writes an endpoint instance's status.

The production code is read as Python (its syntax tree, not its text): a queryset write that
sets `status` on instances, an instance row deleted (its removal: the log's last row), a
`status` assigned in a module that deals with instances, a raw SQL write of the table. The
checker is shown to find each of these in small examples, and the writer's own writes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "endpoints" / "services" / "instances.py"

INSTANCE_NAMES = {"EndpointInstance", "instances"}  # the model, and Endpoint.instances
QUERYSET_WRITES = {"update", "create", "get_or_create", "update_or_create", "bulk_create"}
FIELD_LIST_WRITES = {"save", "bulk_update"}
RAW_WRITE = re.compile(r"\b(update|insert|delete)\b.*endpointinstance", re.IGNORECASE | re.DOTALL)


def _mentions(node: ast.AST, names: set[str]) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id in names:
            return True
        if isinstance(inner, ast.Attribute) and inner.attr in names:
            return True
    return False


def _holds_status(nodes: list[ast.expr]) -> bool:
    return any(
        isinstance(inner, ast.Constant) and inner.value == "status"
        for node in nodes
        for inner in ast.walk(node)
    )


def _call_writes(node: ast.Call, about_instances: bool) -> bool:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "setattr" and about_instances and _holds_status(node.args[1:2])
    if not isinstance(func, ast.Attribute):
        return False
    on_instances = _mentions(func.value, INSTANCE_NAMES)
    status = [k.value for k in node.keywords if k.arg == "status"]
    if func.attr in QUERYSET_WRITES and status:
        return on_instances or any(_mentions(value, {"InstanceStatus"}) for value in status)
    if func.attr == "delete":
        return on_instances
    if func.attr in FIELD_LIST_WRITES:
        return about_instances and _holds_status([*node.args, *(k.value for k in node.keywords)])
    return False


def status_writes(source: str) -> list[int]:
    """Lines of `source` that write an instance's status."""
    about_instances = "EndpointInstance" in source or "InstanceStatus" in source
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            hit = _call_writes(node, about_instances)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            hit = about_instances and any(
                isinstance(t, ast.Attribute) and t.attr == "status"
                for target in targets
                for t in ast.walk(target)
            )
        elif isinstance(node, ast.Dict):  # update(**{"status": InstanceStatus.X})
            hit = any(
                isinstance(key, ast.Constant)
                and key.value == "status"
                and _mentions(value, {"InstanceStatus"})
                for key, value in zip(node.keys, node.values, strict=True)
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hit = bool(RAW_WRITE.search(node.value))
        else:
            hit = False
        if hit:
            found.append(node.lineno)
    return sorted(found)


def production_modules() -> list[Path]:
    """Every Python file of the apps (whatever apps there are), without tests and
    migrations."""
    modules = []
    for package in sorted(ROOT.iterdir()):
        if package.name.startswith(".") or package.name == "tests":
            continue
        if not (package / "__init__.py").exists():
            continue
        modules += [p for p in package.rglob("*.py") if "migrations" not in p.parts]
    return modules


@pytest.mark.parametrize(
    "source",
    [
        "EndpointInstance.objects.filter(pk=1).update(status=InstanceStatus.HEALTHY)",
        "endpoint.instances.update(status='Draining')",
        "EndpointInstance.objects.create(endpoint=e, status=InstanceStatus.STARTING)",
        "rows.filter(pk=1).update(status=InstanceStatus.UNHEALTHY)",
        "from endpoints.models import InstanceStatus\ninstance.status = InstanceStatus.HEALTHY",
        "EndpointInstance.objects.filter(pk=1).delete()",
        "EndpointInstance.objects.bulk_update(rows, ['status'])",
        "from endpoints.models import EndpointInstance\ninstance.save(update_fields=['status'])",
        "rows.update(**{'status': InstanceStatus.UNHEALTHY})",
        "from endpoints.models import EndpointInstance\nsetattr(instance, 'status', 'Healthy')",
        "cursor.execute(\"UPDATE endpoints_endpointinstance SET status = 'Healthy'\")",
    ],
)
def test_the_checker_finds_a_status_write(source: str) -> None:
    assert status_writes(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "EndpointInstance.objects.filter(status=InstanceStatus.HEALTHY).count()",
        "EndpointInstance.objects.filter(pk=1).update(last_check_at=now)",
        "Job.objects.filter(pk=1).update(status='Failed')",
        "job.status = 'Failed'",
        "endpoint.delete()",
    ],
)
def test_the_checker_leaves_reads_and_other_objects_alone(source: str) -> None:
    assert status_writes(source) == []


def test_only_the_transition_service_writes_an_instance_status() -> None:
    modules = production_modules()
    assert WRITER in modules
    assert ROOT / "endpoints" / "services" / "fleet" / "health.py" in modules
    writers = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := status_writes(path.read_text()))
    }
    assert str(WRITER.relative_to(ROOT)) in writers  # the checker sees the real writes
    del writers[str(WRITER.relative_to(ROOT))]
    assert writers == {}, "instance status written outside instance_transition"
