"""The fhir.resources R4B model classes, with two fhir_core validators made fast.

Import the models through this module only. fhir_core runs two Python model validators on
every element of every resource: `reject_null_complex_elements` (before) walks every field of
the class and calls two lru-caches whose 1,024 slots thrash over the R4B models' fields;
`validate_after_model_construction` (after, run twice per element because the FhirBase wrap
validator re-enters the model schema) rebuilds the alias map on each call. Together they are
about half of `model_validate` (measured on the Synthea corpus). The replacements below keep
the same checks and error shapes, with per-class tables computed once.

pydantic binds a model validator by attribute name when each subclass is built
(`Decorator.bind_to_cls`), so the replacements must be installed on FHIRAbstractModel before
any R4B class is created: this module does that on import, before importing the models.
`tests/unit/fhir/test_r4b.py` checks they are bound and behave like the originals.
"""

from __future__ import annotations

import sys
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.utils import _is_list_type, _is_primitive_type
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

# class → {JSON key: key}: the keys (alias and field name) of lists of complex elements.
_COMPLEX_LIST_KEYS: dict[type, dict[str, str]] = {}
# class → (required primitives [(field, ext field, alias)], choices [(fields, required)]),
# or None when the class has neither.
_AFTER_SPEC: dict[type, Any] = {}
_UNSET = object()


def _complex_list_keys(cls: type) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, field in cls.model_fields.items():  # type: ignore[attr-defined]
        if name.endswith("__ext") or _is_list_type(field.annotation) is not True:
            continue
        if _is_primitive_type(field.annotation) is not None:
            continue  # primitive lists keep nulls: positional placeholders for `_field`
        keys[name] = name
        if field.alias:
            keys[field.alias] = field.alias
    _COMPLEX_LIST_KEYS[cls] = keys
    return keys


def _strip_resource_type(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What FHIRAbstractModel.__init__ did before pydantic validated the fields: resourceType
    (not a field) must name the model's type, and is dropped (on a copy: the caller's JSON
    stays as written)."""
    rtype = data.get("resource_type")
    if "resourceType" not in cls.model_fields and data.get("resourceType") is not None:
        rtype = data["resourceType"]
    if rtype is not None and rtype != cls.__resource_type__:
        error: InitErrorDetails = {
            "type": PydanticCustomError(
                "fhir-validation-wrong-resource-type",
                "``{module_name}.{class_name}`` expects resource type ``{expected_resource_type}``,"
                " but got ``{resource_type}``.",
                {
                    "module_name": cls.__module__,
                    "class_name": cls.__name__,
                    "expected_resource_type": cls.__resource_type__,
                    "resource_type": rtype,
                },
            ),
            "loc": ("resource_type",),
            "input": rtype,
        }
        raise ValidationError.from_exception_data(cls.__name__, [error])
    drop = (
        {"resource_type"}
        if "resourceType" in cls.model_fields
        else {"resource_type", "resourceType"}
    )
    return {k: v for k, v in data.items() if k not in drop}


def _reject_null_complex_elements(cls: type, data: Any) -> Any:
    """A null inside a list of complex types has no meaning in FHIR (fhir_core's check)."""
    if not isinstance(data, dict):
        return data
    if "resourceType" in data or "resource_type" in data:
        data = _strip_resource_type(cls, data)
    keys = _COMPLEX_LIST_KEYS.get(cls)
    if keys is None:
        keys = _complex_list_keys(cls)
    errors: list[InitErrorDetails] = []
    for key, value in data.items():
        if key in keys and isinstance(value, list) and any(item is None for item in value):
            errors.append(
                {
                    "type": PydanticCustomError(
                        "list_type", "None is not allowed as an element of {field}", {"field": key}
                    ),
                    "loc": (key,),
                    "input": value,
                }
            )
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    return data


def _after_spec(model: Any) -> Any:
    cls = type(model)
    fields = cls.model_fields
    aliases = cls.get_alias_mapping()
    required = []
    for name, ext in model.get_required_fields():
        key = aliases[name]
        required.append((key, ext, fields[key].alias))
    choices = []
    for prefix, names in model.get_one_of_many_fields().items():
        extra = fields[names[0]].json_schema_extra
        assert extra["one_of_many"] == prefix
        choices.append((tuple(names), extra["one_of_many_required"] is True))
    spec = (tuple(required), tuple(choices)) if required or choices else None
    _AFTER_SPEC[cls] = spec
    return spec


def _has_extension(ext_value: Any) -> bool:
    if isinstance(ext_value, dict):
        return len(ext_value.get("extension", [])) > 0
    return bool(getattr(ext_value, "extension", None))


def _validate_after_model_construction(self: Any) -> Any:
    """Required primitives (value or extension) and one value per choice element [x]."""
    spec = _AFTER_SPEC.get(type(self), _UNSET)
    if spec is _UNSET:
        spec = _after_spec(self)
    if spec is None:
        return self
    required, choices = spec
    values = self.__dict__
    errors: list[InitErrorDetails] = []
    for key, ext, alias in required:
        if values.get(key) is not None:
            continue
        ext_value = values.get(ext) if ext is not None else None
        if ext_value is None or not _has_extension(ext_value):
            errors.append(
                {
                    "type": PydanticCustomError(
                        "model_field_validation.missing",
                        "Value for the field '{field_name}' is required.",
                        {"field_name": alias},
                    ),
                    "loc": (alias,),
                    "input": None,
                }
            )
    if errors:
        raise ValidationError.from_exception_data(type(self).__name__, errors)
    for names, is_required in choices:
        found = sum(1 for n in names if values.get(n) is not None)
        if found > 1:
            raise ValueError(
                f"Any of one field value is expected from this list {list(names)}, but got "
                "multiple!"
            )
        if is_required and not found:
            raise ValueError(f"Expect any of field value from this list {list(names)}.")
    return self


def _install() -> None:
    built = [m for m in sys.modules if m.startswith("fhir.resources.R4B.")]
    if getattr(FHIRAbstractModel, "_gateway_fast_validators", False):
        return
    if any(not m.endswith(("fhirtypes", "fhirtypesvalidators")) for m in built):
        raise RuntimeError(
            "gateway.fhir.r4b must be imported before any fhir.resources.R4B model: "
            f"already built {built[:3]}"
        )
    FHIRAbstractModel.reject_null_complex_elements = classmethod(_reject_null_complex_elements)  # type: ignore[assignment,method-assign]
    FHIRAbstractModel.validate_after_model_construction = _validate_after_model_construction  # type: ignore[assignment,method-assign]
    # pydantic calls a model's own __init__ from inside validation (one more validator pass per
    # element); FHIRAbstractModel.__init__ only checks and drops resourceType, which the
    # before-validator above now does, so let pydantic validate the fields directly.
    FHIRAbstractModel.__init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]
    FHIRAbstractModel._gateway_fast_validators = True  # type: ignore[attr-defined]


_install()

from fhir.resources.R4B import get_fhir_model_class  # noqa: E402

__all__ = ["get_fhir_model_class"]
