"""Build-time work: recipes, token reduction (pruning, pooling), the build / add / compact pipeline."""
