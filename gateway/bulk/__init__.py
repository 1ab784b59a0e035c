"""Bulk Data: $export jobs and NDJSON files, $import."""
