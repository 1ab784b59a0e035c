"""HL7 v2 messages (ADT^A01/A04/A08, ORU^R01) → FHIR: parsed with python-hl7, mapped by the
declarative specs of mappings/hl7v2/ with the regional mappings' engine, written as one
transaction per message, acknowledged (AA / AE / AR with ERR segments)."""
