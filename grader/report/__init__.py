"""The report: the pydantic models every stage hands the next, and the JSON contract."""
