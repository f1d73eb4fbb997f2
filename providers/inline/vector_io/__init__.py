"""In-process vector IO providers."""
