"""Ask Kap tests."""
