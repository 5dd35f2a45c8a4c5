"""The perceptual core: VGG19 encoder, perceptual losses, images, colour, temporal terms."""
