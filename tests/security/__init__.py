"""Security tests (issue 19): a package, so that its conftest does not shadow the
`conftest` module other test directories import by name."""
