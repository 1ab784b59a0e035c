"""Search parameters as data: registry of SearchParameter definitions and index extraction."""
