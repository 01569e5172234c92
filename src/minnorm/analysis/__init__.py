"""From collected runs to conclusions: collection, power-law fits, theorem checks, the studies."""
