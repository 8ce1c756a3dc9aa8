"""Offline studies (no event loop): model ablations evaluated on drops of the world."""
