"""camera: the physics of capture — CSS projection, mosaic, noise, demosaic, encoding."""
