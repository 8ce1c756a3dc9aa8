"""Array response, codebooks and channel backends."""
