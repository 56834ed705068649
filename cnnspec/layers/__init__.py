"""Layer kinds as data, each declared once and read by every stage that needs it (issue 16's
registry; activations are the first family in it). Nothing here imports torch."""
