"""flavortag tests."""
