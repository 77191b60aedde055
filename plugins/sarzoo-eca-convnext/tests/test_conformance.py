"""sarzoo's conformance checks on every component this distribution provides: one line."""
from sarzoo.testing import conformance_test

test_sarzoo_conformance = conformance_test("sarzoo-eca-convnext")
