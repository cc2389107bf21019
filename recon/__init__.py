"""recon: spectral reconstruction models, their registry and the inference engine."""
