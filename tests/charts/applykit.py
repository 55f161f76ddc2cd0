"""Server-side apply of rendered objects to the real API server, and the proof
that it kept every field.

The API server silently drops ("prunes") fields a CRD's structural schema
does not declare, unless the client asks for strict field validation, which
Helm does not. So a custom resource is applied the way Helm would send it
(``fieldValidation=Ignore``) and the object the API server returns (what it
stored) is compared with the one sent, field by field: a field that was sent
and is not stored is reported with its path. Built-in kinds are applied with
``fieldValidation=Strict`` (an unknown field is an error) and compared the
same way, allowing for quantities the server writes in canonical form
(``1024Mi`` is stored as ``1Gi``).
"""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chartkit import Manifest

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
BUILTIN_GROUPS = ("", "apps", "policy", "networking.k8s.io", "rbac.authorization.k8s.io")


class ApplyError(RuntimeError):
    """The API server refused a request; the message has its answer."""


@dataclass
class Resource:
    plural: str
    namespaced: bool


@dataclass
class KubeClient:
    """Just enough of the Kubernetes REST API for these tests (urllib, the
    test server's admin certificate)."""

    url: str
    context: ssl.SSLContext
    _resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        *,
        missing_ok: bool = False,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if missing_ok and e.code == 404:
                return None
            raise ApplyError(
                f"{method} {path}: {e.code} {e.read().decode(errors='replace')}"
            ) from e

    def resource(self, api_version: str, kind: str) -> Resource:
        if api_version not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.request("GET", base)
            self._resources[api_version] = {
                r["kind"]: Resource(r["name"], r["namespaced"])
                for r in listing["resources"]
                if "/" not in r["name"]
            }
        return self._resources[api_version][kind]

    def path(self, obj: Manifest, name: bool = True) -> str:
        api_version, kind = obj["apiVersion"], obj["kind"]
        res = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        ns = obj["metadata"].get("namespace")
        if res.namespaced:
            assert ns, f"{kind}/{obj['metadata']['name']} has no namespace"
            base += f"/namespaces/{ns}"
        path = f"{base}/{res.plural}"
        return f"{path}/{obj['metadata']['name']}" if name else path

    def apply(self, obj: Manifest, manager: str, *, strict: bool) -> Manifest:
        """Server-side apply (no force: a field another manager owns is a
        conflict, so two releases writing one object is an error)."""
        query = urllib.parse.urlencode(
            {"fieldManager": manager, "fieldValidation": "Strict" if strict else "Ignore"}
        )
        stored: Manifest = self.request(
            "PATCH", f"{self.path(obj)}?{query}", obj, "application/apply-patch+yaml"
        )
        return stored

    def get(self, obj: Manifest) -> Manifest | None:
        got: Manifest | None = self.request("GET", self.path(obj), missing_ok=True)
        return got

    def ensure_namespace(self, name: str) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.apply(ns, "ticklake-tests", strict=True)

    def install_crds(self, crds: Iterable[Manifest]) -> None:
        """Create or replace CRDs (replacing keeps stored objects) and wait
        until each is Established."""
        crds = list(crds)
        for crd in crds:
            path = (
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            )
            query = urllib.parse.urlencode({"fieldManager": "ticklake-tests", "force": "true"})
            self.request("PATCH", f"{path}?{query}", crd, "application/apply-patch+yaml")
        deadline = time.monotonic() + 60
        for crd in crds:
            path = (
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            )
            while True:
                got = self.request("GET", path)
                conditions = (got.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise ApplyError(f"CRD {crd['metadata']['name']} not Established: {conditions}")
                time.sleep(0.1)
        # Served versions may have changed: forget what discovery said.
        self._resources.clear()


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki|)$")
_SUFFIX = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity's value, or None if ``value`` is not one."""
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (ArithmeticError, KeyError):
        return None


def _same_scalar(sent: object, stored: object, *, quantities: bool) -> bool:
    if sent == stored and type(sent) is type(stored):
        return True
    if quantities and isinstance(sent, str | int) and isinstance(stored, str | int):
        a, b = quantity(sent), quantity(stored)
        return a is not None and a == b
    return False


def lost_fields(sent: Any, stored: Any, path: str = "", *, quantities: bool = False) -> list[str]:
    """Paths of what was sent and is not stored as sent: missing (pruned) or
    changed. Fields the server added (defaults, status, managed metadata) are
    not reported."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path} (sent a map, stored {stored!r})"]
        out: list[str] = []
        for key, value in sent.items():
            if key not in stored:
                # Built-in kinds drop empty lists and maps when they store
                # (Go's omitempty); nothing is lost. CRD objects keep them.
                if not (quantities and value in ([], {}, None)):
                    out.append(f"{path}.{key} (pruned)")
            else:
                out += lost_fields(value, stored[key], f"{path}.{key}", quantities=quantities)
        return out
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path} (sent {len(sent)} items, stored {stored!r})"]
        out = []
        for i, (a, b) in enumerate(zip(sent, stored, strict=True)):
            out += lost_fields(a, b, f"{path}[{i}]", quantities=quantities)
        return out
    if _same_scalar(sent, stored, quantities=quantities):
        return []
    return [f"{path} (sent {sent!r}, stored {stored!r})"]


def is_builtin(obj: Manifest) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return group in BUILTIN_GROUPS


def apply_and_compare(client: KubeClient, obj: Manifest, manager: str) -> list[str]:
    """Send one object the two ways it reaches a cluster and return what the
    API server refused or did not keep (empty: every field kept).

    1. A create as Helm 3 sends it (POST, no field validation), dry-run: the
       answer is what would be stored, so a field a CRD does not declare shows
       up as pruned, silently, exactly as on ``helm install``.
    2. Server-side apply, for real, then read back with a GET: SSA refuses
       undeclared fields outright, and the stored object is compared again.
    """
    builtin = is_builtin(obj)
    label = f"{obj['kind']}/{obj['metadata']['name']}"
    problems: list[str] = []
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Ignore"})
    try:
        helm_view = client.request("POST", f"{client.path(obj, name=False)}?{query}", obj)
        problems += [f"{label}{p}" for p in lost_fields(obj, helm_view, quantities=builtin)]
    except ApplyError as e:
        problems.append(f"{label}: create refused: {e}")
    try:
        stored = client.apply(obj, manager, strict=builtin)
    except ApplyError as e:
        problems.append(f"{label}: apply refused: {e}")
        return problems
    again = client.get(obj)
    assert again is not None, f"{label} gone after apply"
    assert again["metadata"]["uid"] == stored["metadata"]["uid"]
    for p in lost_fields(obj, again, quantities=builtin):
        if f"{label}{p}" not in problems:
            problems.append(f"{label}{p}")
    return problems
