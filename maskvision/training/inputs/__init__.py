"""What a training step consumes: the views of an image, the masks, the collators that batch them, and the rows a run
reads (map-style, on the device, or streamed)."""
