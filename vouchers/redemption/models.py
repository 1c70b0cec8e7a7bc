"""Models of the redemption app."""
