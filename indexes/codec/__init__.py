"""The vector code: k-means centroids and 1/2/4-bit residuals (build and search both read it)."""
