"""RAID: the project's actions, risks, issues and decisions, found in its documents and kept with their sources."""
