"""Data shipped inside the package: the embedded MNIST digits (see README.md here)."""
