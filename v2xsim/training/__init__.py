"""Training of the learned models and the model store that caches them."""
