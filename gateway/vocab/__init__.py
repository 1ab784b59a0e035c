"""The ground floor: vocabulary every layer shares (request context, outcomes and errors, the
search request model, exact JSON, server time, the shipped R4 definitions). It imports nothing
else of the gateway, so anything may stand on it."""
