"""cyclegan."""
