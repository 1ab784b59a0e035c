"""The instance walk: one resource's JSON against one compiled element tree.

For every JSON property: is it an element of the definition (unknown → VAL-1001), is its JSON
form right (array or not), is the primitive value valid; per element: cardinality, slicing,
fixed/pattern, binding, reference target, invariants; then recursion into complex values,
using the profile's own children when it constrains them and the data type's tree otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gateway.validation import bundle_rules, datatype_rules, national_ids, primitives
from gateway.validation.checks import (
    binding_problem,
    equals_fixed,
    matches_pattern,
    reference_type,
)
from gateway.validation.elements import MISSING, ElementNode, TypeRef
from gateway.validation.issues import Issue
from gateway.validation.registry import CORE_SD
from gateway.validation.trees import TreeCache

Item = tuple[TypeRef, Any, Any, str]  # type, value, '_' extension object, FHIRPath
NestedHook = Callable[[dict[str, Any], str, dict[str, Any]], None]
_ANY_RESOURCE = ("Resource", "DomainResource")
# Text a browser would take for markup: an opening or closing tag (`<b>`, `</script>`,
# `<img src=…>`), not a comparison such as `BP < 140`.
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_TEXT_TYPES = ("string", "markdown")


class Walker:
    def __init__(
        self,
        trees: TreeCache,
        issues: list[Issue],
        nested: NestedHook,
        rules: bool = True,
        unknown_extensions: str = "warning",
        security_checks: bool = False,
    ) -> None:
        self.trees = trees
        self.registry = trees.registry
        self.issues = issues
        self.nested = nested  # validates an inline resource (contained, Bundle entry…)
        # False: structure only (JSON form, elements, primitives, cardinality); no fixed or
        # pattern values, bindings, reference targets or invariants.
        self.rules = rules
        # The severity of an extension defined nowhere the registry knows, outside our
        # namespace and the R4 core one (see Validator).
        self.unknown = unknown_extensions
        # HTML tags in string and markdown values: information, or with security checks on an
        # error, as the reference validator reports them.
        self.html_severity = "error" if security_checks else "information"

    def issue(self, message_id: str, path: str, severity: str = "error", **fields: Any) -> None:
        self.issues.append(Issue.make(message_id, path, severity, **fields))

    def broken(self, message_id: str, path: str, **fields: Any) -> None:
        """An error against R4 itself (see Issue.structural)."""
        self.issues.append(Issue.make(message_id, path, structural=True, **fields))

    # ---- entry point ----
    def resource(self, root: ElementNode, resource: dict[str, Any], path: str, env: dict) -> None:
        self._contents(root, resource, path, env, is_resource=True)
        if self.rules:
            self._invariants(root.invariants, resource, root.path, path, env)
            for message_id, where, fields in national_ids.person_problems(
                resource, path, root.invariant_keys
            ):
                self.issue(message_id, where, **fields)
            if root.path == "Bundle":
                for message_id, where, fields in bundle_rules.problems(resource, path):
                    self.issue(message_id, where, **fields)

    # ---- object contents ----
    def _contents(
        self,
        owner: ElementNode,
        value: dict[str, Any],
        path: str,
        env: dict,
        is_resource: bool = False,
    ) -> None:
        keys = owner.keys
        present: dict[str, dict[str, list[Any]]] = {}
        for key, v in value.items():
            if is_resource and key == "resourceType":
                continue
            underscore = key[0] == "_"
            base = key[1:] if underscore else key
            hit = keys.get(base)
            if hit is None or (underscore and not hit[1].primitive):
                self.broken("VAL-1001", f"{path}.{key}", name=key)
                continue
            if v is None:  # json.html: null only pads arrays, never stands for a value
                self.broken("VAL-1017", f"{path}.{base}")
                continue
            by_key = present.get(hit[0].name)
            if by_key is None:
                by_key = present[hit[0].name] = {}
            slot = by_key.get(base)
            if slot is None:
                slot = by_key[base] = [hit[1], None, None]
            slot[2 if underscore else 1] = v
        for name, child in owner.children.items():
            entry = present.get(name)
            if entry is None:
                if child.min > 0:
                    self._cardinality("VAL-1002", child, f"{path}.{child.name}", 0)
                for s in child.slices:
                    if s.min > 0:
                        self.issue(
                            "VAL-1030",
                            f"{path}.{child.name}",
                            slice=s.slice_name,
                            min=s.min,
                            count=0,
                        )
                continue
            self._element(child, entry, path, env)

    def _element(self, child: ElementNode, entry: dict, path: str, env: dict) -> None:
        if len(entry) > 1:
            self.broken(
                "VAL-1013",
                f"{path}.{child.name}",
                name=child.name + "[x]",
                types=", ".join(slot[0].code for slot in entry.values()),
            )
        items: list[Item] = []
        for key, (tref, v, ext) in entry.items():
            # A choice value is located as the reference validator writes it:
            # Observation.value.ofType(Quantity), not the JSON name valueQuantity.
            kpath = f"{path}.{child.name}.ofType({tref.code})" if child.choice else f"{path}.{key}"
            items.extend(self._items(child, tref, v, ext, kpath))
        count = len(items)
        where = f"{path}.{child.name}"
        if count < child.min:
            self._cardinality("VAL-1002", child, where, count)
        if child.max is not None and count > child.max:
            self._cardinality("VAL-1003", child, where, count)
        if child.slices:
            self._sliced(child, items, where, env)
        else:
            for tref, v, ext, ipath in items:
                self._item(child, tref, v, ext, ipath, env)

    def _cardinality(self, message_id: str, child: ElementNode, where: str, count: int) -> None:
        """Too few or too many: structural when the base definition's cardinality is broken,
        a profile error when only the profile's narrower one is."""
        if message_id == "VAL-1002":
            fields: dict[str, Any] = {"min": child.min}
            base_broken = count < child.base_min
        else:
            fields = {"max": child.max}
            base_broken = child.base_max is not None and count > child.base_max
        self.issues.append(
            Issue.make(
                message_id, where, structural=base_broken, name=child.name, count=count, **fields
            )
        )

    def _items(self, child: ElementNode, tref: TypeRef, v: Any, ext: Any, kpath: str) -> list[Item]:
        if not child.array:
            if isinstance(v, list) or isinstance(ext, list):
                self.broken("VAL-1005", kpath, name=child.name)
                return []
            return [(tref, v, ext, kpath)]
        values, exts = self._as_list(v, kpath, child), self._as_list(ext, kpath, child)
        if values and exts and len(values) != len(exts):
            # json.html: the two arrays are aligned, null padding the shorter side
            self.broken("VAL-1018", kpath, name=kpath.rsplit(".", 1)[-1])
        out: list[Item] = []
        for i in range(max(len(values), len(exts))):
            val = values[i] if i < len(values) else None
            ex = exts[i] if i < len(exts) else None
            if val is None and ex is None:
                self.broken("VAL-1016", f"{kpath}[{i}]")
                continue
            out.append((tref, val, ex, f"{kpath}[{i}]"))
        return out

    def _as_list(self, v: Any, kpath: str, child: ElementNode) -> list[Any]:
        if v is None:
            return []
        if not isinstance(v, list):
            self.broken("VAL-1004", kpath, name=child.name)
            return [v]
        if not v:
            self.broken("VAL-1011", kpath)
        return v

    def _sliced(self, child: ElementNode, items: list[Item], where: str, env: dict) -> None:
        matchers = self.trees.matchers(child)
        counts = {id(s): 0 for s, _ in matchers}
        closed = child.slicing is not None and child.slicing.rules == "closed"
        for tref, v, ext, ipath in items:
            target = next((s for s, match in matchers if match(v)), None)
            if target is None:
                if closed:
                    self.issue("VAL-1032", ipath, name=child.name)
                self._item(child, tref, v, ext, ipath, env)
                continue
            counts[id(target)] += 1
            self._item(target, target.type_for(tref.code) or tref, v, ext, ipath, env)
        for s, _ in matchers:
            n = counts[id(s)]
            if n < s.min:
                self.issue("VAL-1030", where, slice=s.slice_name, min=s.min, count=n)
            if s.max is not None and n > s.max:
                self.issue("VAL-1031", where, slice=s.slice_name, max=s.max, count=n)

    # ---- one value ----
    def _item(
        self, node: ElementNode, tref: TypeRef, v: Any, ext: Any, path: str, env: dict
    ) -> None:
        if tref.primitive:
            self._primitive(node, tref, v, ext, path, env)
            return
        if tref.code in _ANY_RESOURCE or self.registry.is_resource_type(tref.code):
            if not isinstance(v, dict):
                self.broken("VAL-1006", path, type="Resource", expected="JSON object")
            elif not isinstance(v.get("resourceType"), str):
                # json.html: every resource, contained ones too, names its type
                self.broken("VAL-1012", f"{path}.resourceType", type=v.get("resourceType"))
            else:
                self.nested(v, path, env)
            return
        if not isinstance(v, dict):
            self.broken("VAL-1006", path, type=tref.code, expected="JSON object")
            return
        if not v:
            self.broken("VAL-1011", path)
            return
        if self.rules:
            self._value_rules(node, tref, v, path)
            if tref.code == "Reference":
                self._reference(tref, v, path, env)
            rule = datatype_rules.RULES.get(tref.code)
            if rule is not None:
                for message_id, below, fields in rule(v, node.invariant_keys):
                    self.issue(message_id, path + below, **fields)
        owner, invariants, type_path = self._owner(node, tref, v, path)
        self._contents(owner, v, path, env)
        if self.rules:
            self._invariants(invariants, v, type_path, path, env)

    def _primitive(
        self, node: ElementNode, tref: TypeRef, v: Any, ext: Any, path: str, env: dict
    ) -> None:
        if v is not None:
            problem = primitives.check(tref.code, v)
            if problem:
                self.broken(problem[0], path, **problem[1])
            elif self.rules:
                self._value_rules(node, tref, v, path)
                if node.max_length and isinstance(v, str) and len(v) > node.max_length:
                    self.issue("VAL-1015", path, length=len(v), max=node.max_length)
                if tref.code in _TEXT_TYPES and "<" in v and _HTML_TAG.search(v):
                    self.issue("VAL-1113", path, self.html_severity)
        if ext is not None:
            if not isinstance(ext, dict):
                self.broken("VAL-1006", path, type="Element", expected="JSON object")
            elif not ext:
                self.broken("VAL-1011", path)
            else:
                element = self.trees.type_root("Element")
                if element is not None:
                    self._contents(element, ext, path, env)
        if self.rules and node.value_invariants and v is not None:
            self._invariants(node.value_invariants, v, node.path, path, env)

    def _value_rules(self, node: ElementNode, tref: TypeRef, v: Any, path: str) -> None:
        if node.fixed is not MISSING and not equals_fixed(v, node.fixed):
            self.issue("VAL-1020", path, expected=_show(node.fixed))
        if node.pattern is not MISSING and not matches_pattern(v, node.pattern):
            self.issue("VAL-1021", path, expected=_show(node.pattern))
        if node.binding:
            problem = binding_problem(self.registry.terminology, *node.binding, tref.code, v)
            if problem:
                severity = "error" if problem[0] in ("VAL-1040", "VAL-1042") else "warning"
                self.issue(problem[0], path, severity, **problem[1])
        if tref.code in ("Coding", "CodeableConcept"):
            self._local_codes(tref.code, v, path)

    def _local_codes(self, code: str, v: dict, path: str) -> None:
        codings = [v] if code == "Coding" else v.get("coding", [])
        for i, coding in enumerate(codings if isinstance(codings, list) else []):
            system = coding.get("system") if isinstance(coding, dict) else None
            if not isinstance(system, str) or not self.registry.is_local(system):
                continue
            cs = self.registry.terminology.code_system(system)
            c = coding.get("code")
            if cs is not None and cs.complete and isinstance(c, str) and cs.find(c) is None:
                where = path if code == "Coding" else f"{path}.coding[{i}]"
                self.issue("VAL-1043", where, code=c, system=system)

    def _reference(self, tref: TypeRef, v: dict, path: str, env: dict) -> None:
        ref = v.get("reference")
        found = (
            reference_type(ref, env, self.registry.is_resource_type)
            if isinstance(ref, str)
            else None
        )
        declared = v.get("type")
        if isinstance(declared, str) and found and declared != found:
            self.issue("VAL-1062", path, declared=declared, type=found)
        actual = found or (
            declared
            if isinstance(declared, str) and self.registry.is_resource_type(declared)
            else None
        )
        allowed = self.trees.target_types(tref)
        if actual and allowed is not None and actual not in allowed:
            self.issue("VAL-1060", path, type=actual, allowed=", ".join(sorted(allowed)))

    def _owner(
        self, node: ElementNode, tref: TypeRef, v: dict, path: str
    ) -> tuple[ElementNode, tuple, str]:
        """The node whose children describe `v`, the invariants, and the FHIRPath type path."""
        if node.children:
            if tref.code in ("BackboneElement", "Element"):
                return node, node.invariants, node.type_path or node.path
            root = self.trees.type_root(tref.code)
            return node, self._merged(node, root), tref.code
        target = None
        if tref.profiles:
            target = self.trees.get(tref.profiles[0])
        elif tref.code == "Extension" and isinstance(v.get("url"), str):
            target = self._extension_tree(node, v["url"], path)
        if target is None:
            target = self.trees.type_root(tref.code) or node
        return target, self._merged(node, target), target.path

    def _merged(self, node: ElementNode, root: ElementNode | None) -> tuple:
        key = (id(node), id(root))
        found = self.trees.merged.get(key)
        if found is None:
            found = self.trees.merged[key] = node.invariants + _extra(node, root)
        return found

    def _extension_tree(self, node: ElementNode, url: str, path: str) -> ElementNode | None:
        tree = self.trees.get(url)
        if tree is not None:
            return tree
        if self.registry.is_local(url):
            self.issue("VAL-1072", path, url=url)
        elif url.startswith(CORE_SD):
            # The R4 core namespace is closed: its extensions are all in the registry.
            self.issue("VAL-1075", path, url=url)
        elif node.name == "modifierExtension":
            self.issue("VAL-1074", path, self.unknown, url=url)
        else:
            self.issue("VAL-1073", path, self.unknown, url=url)
        return None

    # ---- invariants ----
    def _invariants(
        self, invariants: tuple, value: Any, type_path: str, path: str, env: dict
    ) -> None:
        for inv in invariants:
            try:
                ok = inv.check(value, type_path, env)
            except Exception as exc:  # noqa: BLE001 - engine limits are reported, not raised
                self.issue(
                    "VAL-1051",
                    path,
                    "warning",
                    source=inv.source,
                    key=inv.key,
                    detail=str(exc)[:200],
                )
                continue
            if not ok:
                severity = "error" if inv.severity == "error" else "warning"
                self.issues.append(
                    Issue.make(
                        "VAL-1050",
                        path,
                        severity,
                        source=inv.source,
                        key=inv.key,
                        human=inv.human,
                        human_zh=inv.human_zh,
                    )
                )


def _extra(node: ElementNode, root: ElementNode | None) -> tuple:
    if root is None or root is node:
        return ()
    have = {i.key for i in node.invariants}
    return tuple(i for i in root.invariants if i.key not in have)


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
