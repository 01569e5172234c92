"""Files: atomic writes, CF attributes and provenance, netCDF integrity, the numerics
fingerprint."""
