"""FHIR R4 interoperability gateway for China's family-doctor contract service."""

__version__ = "0.1.0"
