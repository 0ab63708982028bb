"""Stages of a project and the external sign-off of each stage."""
