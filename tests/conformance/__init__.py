"""Black-box conformance tests of the REST core against FHIR R4.

Sources: http.html, bundle.html, search.html.
"""
