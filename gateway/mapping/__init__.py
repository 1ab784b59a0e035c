"""The declarative mapping engine: regional systems' records (JSON, CSV) to FHIR and back."""
