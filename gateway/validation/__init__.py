"""Validation: R4 core definitions, our CN family-doctor profiles, local terminology.

Start-up builds one ProfileRegistry and one Validator and shares them (thread-safe):

    registry = ProfileRegistry.load(settings.profiles_dir)          # + core definitions
    validator = Validator(registry)                                 # DEFAULT_PROFILES apply
    issues = validator.validate(resource, profiles=None, mode=None)  # list[Issue]
    outcome = operation_outcome(issues)                             # OperationOutcome dict

HTTP-facing operations: run_validate ($validate), check_write / raise_for_write (on write),
expand_valueset, lookup_code, validate_code, find_conformance, pack_profiles.
"""

from gateway.validation.issues import Issue, has_errors, operation_outcome
from gateway.validation.locations import CANONICAL_BASE, PACKAGE_NAME, PACKAGE_VERSION
from gateway.validation.operations import (
    ValidateRequest,
    ValidationFailed,
    WriteCheck,
    check_write,
    parse_validate_body,
    raise_for_write,
    run_validate,
)
from gateway.validation.package import pack_profiles
from gateway.validation.registry import ProfileRegistry, RegistryError
from gateway.validation.terminology_ops import (
    TerminologyError,
    expand_valueset,
    find_conformance,
    lookup_code,
    validate_code,
)
from gateway.validation.validator import (
    CN_PROFILES,
    DEFAULT_PROFILES,
    DefaultProfile,
    Validator,
)

__all__ = [
    "CANONICAL_BASE",
    "CN_PROFILES",
    "DEFAULT_PROFILES",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "DefaultProfile",
    "Issue",
    "ProfileRegistry",
    "RegistryError",
    "TerminologyError",
    "ValidateRequest",
    "ValidationFailed",
    "Validator",
    "WriteCheck",
    "check_write",
    "expand_valueset",
    "find_conformance",
    "has_errors",
    "lookup_code",
    "operation_outcome",
    "pack_profiles",
    "parse_validate_body",
    "raise_for_write",
    "run_validate",
    "validate_code",
]
