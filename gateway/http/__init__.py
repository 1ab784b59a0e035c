"""HTTP adapter: Starlette/FastAPI request → FhirRequest, FhirResponse → HTTP response."""
