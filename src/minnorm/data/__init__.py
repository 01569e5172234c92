"""Data sets (generators, image-file readers, the data-file format) and the target files built from
them."""
