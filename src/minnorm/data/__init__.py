"""Data sets: generators, image-file readers, the data-file format."""
