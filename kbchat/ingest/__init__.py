"""Ingestion: turn files into Documents (``load_file``), one loader per format."""

from kbchat.ingest.loaders import LoadLimits, is_supported, load_file, supported_extensions

__all__ = ["LoadLimits", "is_supported", "load_file", "supported_extensions"]
