"""One module per FHIR interaction; each handler takes a Call and returns a FhirResponse."""
