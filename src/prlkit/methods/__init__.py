"""Methods: a network plus its training recipe, each trained and evaluated by the same harness."""
