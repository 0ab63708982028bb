"""Backups: nightly project ZIPs, the viewer, store-and-re-ingest, full restore and retention."""
