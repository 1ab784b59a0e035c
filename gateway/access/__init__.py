"""Authorization: the access policies (profiles/policy/access.yaml), what each client may see
as SQL over the stored resources, what it may write, audit and provenance."""
