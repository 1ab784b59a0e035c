"""Framework-free FHIR core: requests in, outcomes and resources out."""
